import { migrateToLatest } from '@meshplane/event-store';
import type { INestApplication } from '@nestjs/common';
import type { ApiConfig } from '../../services/api/src/config';
import { jsonOrText, type ListeningApi, listenApi } from '../harness/api';
import { createTestDatabase, type TestDatabase } from '../harness/db';

export { policy, route } from '../harness/resources';

/** A real API on a loopback port over a fresh, migrated database. */
export interface ApiHarness {
  url: string;
  db: TestDatabase;
  app: INestApplication;
  adminToken: string;
  logs: Record<string, unknown>[];
  call(method: string, path: string, opts?: CallOptions): Promise<ApiResponse>;
  head(): Promise<number>;
  close(): Promise<void>;
}

export interface CallOptions {
  token?: string | null;
  body?: unknown;
  /** Sent as is (no JSON encoding). */
  raw?: string | Buffer;
  headers?: Record<string, string>;
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: test responses are asserted field by field
  body: any;
  text: string;
}

export const BOOTSTRAP_TOKEN = 'test-bootstrap-token-0123456789abcdef';

export async function startApi(prefix = 'api', extra: Partial<ApiConfig> = {}): Promise<ApiHarness> {
  const db = await createTestDatabase(prefix);
  const logs: Record<string, unknown>[] = [];
  let listening: ListeningApi;
  try {
    await migrateToLatest(db.url);
    listening = await listenApi({
      databaseUrl: db.url,
      cluster: 'test',
      bootstrapToken: BOOTSTRAP_TOKEN,
      logSink: (line) => logs.push(line),
      ...extra,
    });
  } catch (err) {
    await db.drop();
    throw err;
  }
  const { app: theApp, url } = listening;

  const call = async (method: string, path: string, opts: CallOptions = {}): Promise<ApiResponse> => {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    const token = opts.token === undefined ? BOOTSTRAP_TOKEN : opts.token;
    if (token !== null) headers.authorization ??= `Bearer ${token}`;
    let body: string | Buffer | undefined;
    if (opts.raw !== undefined) body = opts.raw;
    else if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await fetch(url + path, { method, headers, body });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: jsonOrText(text), text };
  };

  return {
    url,
    db,
    app: theApp,
    adminToken: BOOTSTRAP_TOKEN,
    logs,
    call,
    async head() {
      const r = await call('GET', '/v1/revisions?limit=1');
      if (r.status !== 200) throw new Error(`head: ${r.status} ${r.text}`);
      return r.body.headRevision as number;
    },
    async close() {
      await theApp.close().catch(() => undefined);
      await db.drop();
    },
  };
}

/* Example data: loopback only (VIPs 127.100.x.y, workloads 127.0.1.x), as DESIGN.md requires. */

export function service(name: string, vip: string, port = 9080, extra: Record<string, unknown> = {}) {
  return {
    kind: 'Service',
    name,
    spec: { vip, ports: [{ port, protocol: 'TCP' }], selector: { app: name }, ...extra },
  };
}

export function workload(name: string, address: string, app: string, version = 'v1') {
  return {
    kind: 'Workload',
    name,
    spec: { address, node: 'node-a', labels: { app, version }, identity: app },
  };
}

export function change(
  apply: unknown[],
  del: unknown[] = [],
  reason = 'test change',
  extra: Record<string, unknown> = {},
) {
  return { reason, apply, delete: del, ...extra };
}
