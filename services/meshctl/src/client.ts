import type {
  AuditResponse,
  ChangeSet,
  DiffResponse,
  ErrorBody,
  ErrorDetail,
  ResourceHistoryEntry,
  ResourceResponse,
  ResourcesResponse,
  RevisionsResponse,
  RollbackDryRunResponse,
  VerifyResponse,
  WriteResponse,
} from './api-types';
import { UsageError } from './errors';

/** The server answered with an error status; carries its `{ error: { code, message, details } }`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: ErrorDetail[] = [],
    readonly headRevision?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** No usable answer: connection refused, reset, timed out, or a body that is not the API's JSON. */
export class TransportError extends Error {
  constructor(
    message: string,
    readonly reason: 'connect' | 'timeout' | 'protocol',
  ) {
    super(message);
    this.name = 'TransportError';
  }
}

export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

export interface ClientOptions {
  server: string;
  token?: string;
  /** Per attempt; default 30 s. */
  timeoutMs?: number;
  /** Extra attempts for requests that are safe to repeat (GETs, writes with an Idempotency-Key). */
  retries?: number;
  userAgent?: string;
  fetch?: FetchLike;
  /** Waits between retries; replaced in tests. */
  sleep?: (ms: number) => Promise<void>;
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface Sent<T> {
  status: number;
  body: T;
}

export const DEFAULT_SERVER = 'http://127.0.0.1:8080';
export const DEFAULT_TIMEOUT_MS = 30_000;

/** Validates and normalizes a server URL (no trailing slash); a usage error when it is not http(s). */
export function normalizeServer(server: string): string {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new UsageError(`--server/MESH_SERVER must be an http(s) URL, got "${server}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new UsageError(`--server/MESH_SERVER must be an http(s) URL, got "${server}"`);
  if (url.search || url.hash)
    throw new UsageError(`--server/MESH_SERVER must not carry a query or fragment: "${server}"`);
  return url.toString().replace(/\/+$/, '');
}

const seg = (s: string | number) => encodeURIComponent(String(s));

function causeCode(err: unknown): string | undefined {
  const cause = (err as { cause?: { code?: unknown } })?.cause;
  return typeof cause?.code === 'string' ? cause.code : undefined;
}

// Failures after which the same request may well succeed.
const TRANSIENT_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'ETIMEDOUT']);
const TRANSIENT_STATUS = new Set([502, 503, 504]);

/** A thin typed client of the Meshplane HTTP API. */
export class MeshClient {
  readonly server: string;
  private readonly fetchFn: FetchLike;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly opts: ClientOptions) {
    this.server = normalizeServer(opts.server);
    this.fetchFn = opts.fetch ?? ((url, init) => fetch(url, init));
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.retries = opts.retries ?? 2;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  url(path: string, query: RequestOptions['query'] = {}): string {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') params.set(k, String(v));
    const qs = params.toString();
    return `${this.server}${path}${qs ? `?${qs}` : ''}`;
  }

  /** One request; repeats transient failures only when repeating cannot write twice. */
  async send<T>(method: string, path: string, opts: RequestOptions = {}): Promise<Sent<T>> {
    const headers: Record<string, string> = {
      accept: 'application/json',
      'user-agent': this.opts.userAgent ?? 'meshctl',
      ...(opts.headers ?? {}),
    };
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
    const repeatable = method === 'GET' || headers['idempotency-key'] !== undefined;
    const url = this.url(path, opts.query);
    for (let attempt = 0; ; attempt++) {
      const canRetry = repeatable && attempt < this.retries;
      const backoff = () => this.sleep(250 * 2 ** attempt);
      let res: Response;
      let text: string;
      try {
        res = await this.fetchFn(url, { method, headers, body, signal: AbortSignal.timeout(this.timeoutMs) });
        text = await res.text();
      } catch (err) {
        const failure = this.transportError(err, method, url);
        if (canRetry && failure.reason !== 'timeout' && TRANSIENT_CODES.has(causeCode(err) ?? '')) {
          await backoff();
          continue;
        }
        throw failure;
      }
      if (canRetry && TRANSIENT_STATUS.has(res.status)) {
        await backoff();
        continue;
      }
      return { status: res.status, body: this.decode<T>(res, text, method, url) };
    }
  }

  private transportError(err: unknown, method: string, url: string): TransportError {
    const name = (err as { name?: string })?.name;
    if (name === 'TimeoutError' || name === 'AbortError')
      return new TransportError(`${method} ${url} timed out after ${this.timeoutMs} ms`, 'timeout');
    const cause = (err as { cause?: unknown })?.cause;
    const why =
      causeCode(err) ??
      (cause instanceof Error ? cause.message : err instanceof Error ? err.message : String(err));
    return new TransportError(`cannot reach the API at ${this.server} (${why})`, 'connect');
  }

  private decode<T>(res: Response, text: string, method: string, url: string): T {
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (res.ok) {
      if (parsed === undefined)
        throw new TransportError(
          `${method} ${url}: HTTP ${res.status} with a body that is not JSON; is ${this.server} a Meshplane API?`,
          'protocol',
        );
      return parsed as T;
    }
    const e = (parsed as ErrorBody | undefined)?.error;
    if (e && typeof e.code === 'string' && typeof e.message === 'string') {
      const details = Array.isArray(e.details) ? e.details : [];
      throw new ApiError(res.status, e.code, e.message, details, e.headRevision);
    }
    const snippet = text.trim().slice(0, 200);
    throw new ApiError(
      res.status,
      `HTTP_${res.status}`,
      `${method} ${url}: HTTP ${res.status} ${res.statusText}${snippet ? `: ${snippet}` : ''}`,
    );
  }

  async get<T>(path: string, query?: RequestOptions['query']): Promise<T> {
    return (await this.send<T>('GET', path, { query })).body;
  }

  // --- endpoints -----------------------------------------------------------

  changes(
    body: { reason: string; expectedRevision?: number; apply?: unknown[]; delete?: unknown[] },
    idempotencyKey?: string,
  ): Promise<Sent<WriteResponse>> {
    const headers: Record<string, string> = {};
    if (idempotencyKey) headers['idempotency-key'] = idempotencyKey;
    return this.send<WriteResponse>('POST', '/v1/changes', { body, headers });
  }

  rollback(
    body: { toRevision: number; reason: string; dryRun?: boolean; expectedRevision?: number },
    idempotencyKey?: string,
  ): Promise<Sent<WriteResponse | RollbackDryRunResponse>> {
    const headers: Record<string, string> = {};
    if (idempotencyKey) headers['idempotency-key'] = idempotencyKey;
    return this.send('POST', '/v1/rollback', { body, headers });
  }

  resources(
    filter: { kind?: string; namespace?: string; revision?: number } = {},
  ): Promise<ResourcesResponse> {
    return this.get('/v1/resources', filter);
  }

  resource(
    ref: { kind: string; namespace: string; name: string },
    revision?: number,
  ): Promise<ResourceResponse> {
    return this.get(`/v1/resources/${seg(ref.kind)}/${seg(ref.namespace)}/${seg(ref.name)}`, { revision });
  }

  resourceHistory(ref: {
    kind: string;
    namespace: string;
    name: string;
  }): Promise<{ items: ResourceHistoryEntry[] }> {
    return this.get(`/v1/resources/${seg(ref.kind)}/${seg(ref.namespace)}/${seg(ref.name)}/history`);
  }

  revisions(from?: number, limit?: number): Promise<RevisionsResponse> {
    return this.get('/v1/revisions', { from, limit });
  }

  /** The head revision (0 for an empty log). */
  async head(): Promise<number> {
    return (await this.revisions(undefined, 1)).headRevision;
  }

  revision(rev: number): Promise<ChangeSet> {
    return this.get(`/v1/revisions/${seg(rev)}`);
  }

  diff(from: number, to: number): Promise<DiffResponse> {
    return this.get('/v1/diff', { from, to });
  }

  audit(filter: Record<string, string | number | undefined>): Promise<AuditResponse> {
    return this.get('/v1/audit', filter);
  }

  verify(from?: number, to?: number): Promise<VerifyResponse> {
    return this.get('/v1/audit/verify', { from, to });
  }
}
