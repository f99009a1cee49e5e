import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Context } from '@meshplane/telemetry';

/*
 * The slices of Express's request and response this service uses. Typed here
 * because @types/express is not a dependency; Express 5 provides all of these.
 */

export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export function roleRank(role: Role): number {
  return ROLES.indexOf(role);
}

/** Who is calling: resolved from the bearer token by the auth guard. */
export interface Principal {
  tokenId: string;
  name: string;
  role: Role;
}

export interface ApiRequest extends IncomingMessage {
  requestId: string;
  /**
   * The trace context of the request (its server span when tracing is on), captured when it came
   * in: the API carries context explicitly, not across awaits (register-api.ts).
   */
  otelContext?: Context;
  principal?: Principal;
  body?: unknown;
  query: Record<string, unknown>;
  params: Record<string, string>;
  originalUrl: string;
  path: string;
  route?: { path: string };
}

/** Per-request facts the log line and metrics pick up after the response. */
export interface ResponseLocals {
  revision?: number;
  errorCode?: string;
  error?: string;
}

export interface ApiResponse extends ServerResponse {
  locals: ResponseLocals & Record<string, unknown>;
  status(code: number): this;
  json(body: unknown): this;
  send(body: unknown): this;
  type(contentType: string): this;
}

export function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}
