import { EventStore } from '@meshplane/event-store';
import { Controller, Get, Header, Res } from '@nestjs/common';
import { Public } from '../common/auth';
import type { ApiResponse } from '../common/http';
import { MetricsService } from '../common/metrics.service';
import { openApiDocument } from './openapi';

const READY_TIMEOUT_MS = 2000;

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Probes, metrics and the API description: unauthenticated, as scrapers and kubelets expect. */
@Controller()
export class OpsController {
  constructor(
    private readonly store: EventStore,
    private readonly metrics: MetricsService,
  ) {}

  /** Liveness: the process serves HTTP. Deliberately no database check (a DB outage must not restart us). */
  @Get('healthz')
  @Public()
  healthz() {
    return { status: 'ok' };
  }

  /** Readiness: Postgres answers, so requests can be served. */
  @Get('readyz')
  @Public()
  async readyz(@Res({ passthrough: true }) res: ApiResponse) {
    try {
      const head = await withTimeout(this.store.head(), READY_TIMEOUT_MS);
      return { status: 'ready', headRevision: head.revision };
    } catch (err) {
      res.status(503);
      res.locals.errorCode = 'UNAVAILABLE';
      const message = `postgres is not reachable: ${(err as Error).message}`;
      return { error: { code: 'UNAVAILABLE', message, details: [{ path: 'postgres', message }] } };
    }
  }

  @Get('metrics')
  @Public()
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  async metricsText() {
    const head = await withTimeout(this.store.head(), READY_TIMEOUT_MS).catch(() => undefined);
    return this.metrics.render(head ? { headRevision: head.revision } : {});
  }

  @Get('v1/openapi.json')
  @Public()
  openapi() {
    return openApiDocument();
  }
}
