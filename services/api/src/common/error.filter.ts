import { ConflictError, type ErrorDetail, MeshError } from '@meshplane/domain';
import { isConnectionError } from '@meshplane/event-store';
import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException } from '@nestjs/common';
import { STATUS_BY_CODE } from './errors';
import type { ApiResponse } from './http';

export interface ErrorBody {
  error: { code: string; message: string; details: ErrorDetail[]; headRevision?: number };
}

export const MAX_BODY_BYTES = 1024 * 1024;

/**
 * The one place where errors become HTTP. Domain errors carry their code;
 * Nest's HttpExceptions (unknown route; bad JSON, which Nest rethrows as one)
 * and body-parser's own 4xx errors (413) are mapped by status; the rest is 500
 * and never leaks its message to the client (it goes to the log line).
 */
export function toErrorResponse(err: unknown): { status: number; body: ErrorBody; internal?: string } {
  if (err instanceof MeshError) {
    const status = STATUS_BY_CODE[err.code] ?? 500;
    const body: ErrorBody = { error: { code: err.code, message: err.message, details: err.details } };
    if (err instanceof ConflictError) body.error.headRevision = err.headRevision;
    return { status, body };
  }
  if (err instanceof HttpException) return fromStatus(err.getStatus(), err.message);
  if (isClientHttpError(err)) return fromStatus(err.status, err.message);
  if (isConnectionError(err)) {
    return {
      status: 503,
      body: {
        error: { code: 'UNAVAILABLE', message: 'the database is unreachable; retry later', details: [] },
      },
      internal: String((err as Error).message),
    };
  }
  const internal = err instanceof Error ? (err.stack ?? err.message) : String(err);
  return {
    status: 500,
    body: { error: { code: 'INTERNAL', message: 'internal error', details: [] } },
    internal,
  };
}

/** An `http-errors` 4xx from body-parser (413, unsupported charset...) that Nest passes through unmapped. */
function isClientHttpError(err: unknown): err is { status: number; message: string } {
  const e = err as { status?: unknown; expose?: unknown; type?: unknown };
  return (
    typeof e?.status === 'number' &&
    e.status >= 400 &&
    e.status < 500 &&
    e.expose === true &&
    typeof e.type === 'string'
  );
}

function fromStatus(status: number, message: string): { status: number; body: ErrorBody } {
  const make = (code: string, message: string, details: ErrorDetail[] = []) => ({
    status,
    body: { error: { code, message, details } },
  });
  switch (status) {
    case 413:
      return make('PAYLOAD_TOO_LARGE', `request body exceeds ${MAX_BODY_BYTES} bytes (1 MiB)`, [
        { path: '', message: `must be at most ${MAX_BODY_BYTES} bytes` },
      ]);
    case 400: {
      // Body-parser's SyntaxError (bad JSON) or Express's URIError (bad %-escape in the path).
      const json = /JSON/i.test(message);
      return json
        ? make('MALFORMED_JSON', `request body is not valid JSON: ${message}`, [{ path: '', message }])
        : make('INVALID', message, [{ path: '', message }]);
    }
    case 404:
      return make('NOT_FOUND', message.replace(/^Cannot (\w+) (.*)$/, 'no route for $1 $2'));
    case 415:
      return make('UNSUPPORTED_MEDIA_TYPE', message, [{ path: 'headers.content-type', message }]);
    default:
      return make(Object.entries(STATUS_BY_CODE).find(([, s]) => s === status)?.[0] ?? 'ERROR', message);
  }
}

@Catch()
export class ApiExceptionFilter implements ExceptionFilter {
  catch(err: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<ApiResponse>();
    const { status, body, internal } = toErrorResponse(err);
    res.locals.errorCode = body.error.code;
    if (internal) res.locals.error = internal;
    if (res.headersSent) return;
    if (status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="meshplane"');
    res.status(status).json(body);
  }
}
