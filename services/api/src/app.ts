import 'reflect-metadata';
import type { INestApplication, LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule } from './app.module';
import { MAX_BODY_BYTES } from './common/error.filter';
import { ApiLogger, type LogSink, stdoutSink } from './common/logger';
import { MetricsService } from './common/metrics.service';
import { requestContext, requireJson } from './common/request-context';
import type { ApiConfig } from './config';

/** Nest's own warnings and errors, as JSON lines in the same stream; its chatty info logs are dropped. */
function nestLogger(sink: LogSink): LoggerService {
  const line =
    (level: string) =>
    (message: unknown, ...rest: unknown[]) =>
      sink({ time: new Date().toISOString(), level, msg: String(message), context: rest.at(-1) ?? 'nest' });
  const drop = () => undefined;
  return {
    log: drop,
    debug: drop,
    verbose: drop,
    warn: line('warn'),
    error: line('error'),
    fatal: line('error'),
  };
}

/**
 * Builds the API: opens the event store, ensures the bootstrap token, wires the
 * middleware. The database must be migrated. The caller listens, e.g.
 * `await app.listen(0, '127.0.0.1')` in tests.
 */
export async function createApiApp(config: ApiConfig): Promise<INestApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    // Registered below, after the request-context middleware, with the 1 MiB limit.
    bodyParser: false,
    abortOnError: false,
    logger: nestLogger(config.logSink ?? stdoutSink),
  });
  try {
    app.disable('x-powered-by');
    app.disable('etag');
    // Order matters: context first so that parser failures (413, bad JSON, 415) are logged and counted.
    app.use(requestContext(app.get(MetricsService), app.get(ApiLogger).sink));
    app.use(requireJson);
    app.useBodyParser('json', { limit: MAX_BODY_BYTES });
    await app.init();
  } catch (err) {
    await app.close().catch(() => undefined);
    throw err;
  }
  return app;
}
