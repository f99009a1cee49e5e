import { randomUUID } from 'node:crypto';
import { context } from '@meshplane/telemetry';
import { UnsupportedMediaTypeError } from './errors';
import { type ApiRequest, type ApiResponse, header } from './http';
import type { MetricsService } from './metrics.service';

// Honored from the caller so one id follows a change through every service; bounded to keep logs sane.
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

type Next = (err?: unknown) => void;

/**
 * Express-level middleware, registered before the body parser so that even a
 * request the parser rejects (413, bad JSON) gets a request id, metrics and
 * exactly one log line, written when the response is done.
 */
export function requestContext(metrics: MetricsService, sink: (line: Record<string, unknown>) => void) {
  return (req: ApiRequest, res: ApiResponse, next: Next): void => {
    const started = process.hrtime.bigint();
    // Still inside the http instrumentation's synchronous call: its server span is the active one.
    req.otelContext = context.active();
    const given = header(req, 'x-request-id');
    req.requestId = given && REQUEST_ID.test(given) ? given : randomUUID();
    res.setHeader('X-Request-Id', req.requestId);
    let logged = false;
    const done = () => {
      if (logged) return;
      logged = true;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const aborted = !res.writableFinished;
      const route = req.route?.path ?? 'unmatched';
      metrics.observeRequest(req.method ?? 'GET', route, res.statusCode, seconds);
      const line: Record<string, unknown> = {
        time: new Date().toISOString(),
        level: res.statusCode >= 500 ? 'error' : 'info',
        msg: 'request',
        requestId: req.requestId,
        actor: req.principal?.name ?? null,
        method: req.method,
        path: req.originalUrl,
        route,
        status: res.statusCode,
        durationMs: Math.round(seconds * 1e6) / 1e3,
      };
      if (res.locals.revision !== undefined) line.revision = res.locals.revision;
      if (res.locals.errorCode) line.errorCode = res.locals.errorCode;
      if (res.locals.error) line.error = res.locals.error;
      if (aborted) line.aborted = true;
      sink(line);
    };
    res.on('finish', done);
    res.on('close', done);
    next();
  };
}

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/** Requests that carry a body must say it is JSON; anything else is 415 before it is read. */
export function requireJson(req: ApiRequest, _res: ApiResponse, next: Next): void {
  const type = (header(req, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (!BODY_METHODS.has(req.method ?? '') || type === 'application/json') {
    next();
    return;
  }
  next(
    new UnsupportedMediaTypeError(
      type
        ? `content type ${type} is not supported; send application/json`
        : 'missing content type; send application/json',
      [{ path: 'headers.content-type', message: 'must be application/json' }],
    ),
  );
}
