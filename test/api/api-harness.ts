import type { AddressInfo } from 'node:net';
import { migrateToLatest } from '@meshplane/event-store';
import type { INestApplication } from '@nestjs/common';
import { createApiApp } from '../../services/api/src/app';
import type { ApiConfig } from '../../services/api/src/config';
import { createTestDatabase, type TestDatabase } from '../harness/db';

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
  let app: INestApplication | undefined;
  try {
    await migrateToLatest(db.url);
    app = await createApiApp({
      databaseUrl: db.url,
      port: 0,
      host: '127.0.0.1',
      cluster: 'test',
      bootstrapToken: BOOTSTRAP_TOKEN,
      logSink: (line) => logs.push(line),
      ...extra,
    });
    await app.listen(0, '127.0.0.1');
  } catch (err) {
    await app?.close().catch(() => undefined);
    await db.drop();
    throw err;
  }
  const port = (app.getHttpServer().address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  const theApp = app;

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
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON (metrics): keep the text
    }
    return { status: res.status, headers: res.headers, body: parsed, text };
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

export function route(name: string, svc: string, weights: Record<string, number>) {
  return {
    kind: 'Route',
    name,
    spec: {
      service: svc,
      backends: Object.entries(weights).map(([version, weight]) => ({
        selector: { app: svc, version },
        weight,
      })),
    },
  };
}

export function policy(name: string, svc: string, action: 'ALLOW' | 'DENY', identities: string[]) {
  return {
    kind: 'AuthorizationPolicy',
    name,
    spec: { service: svc, action, from: identities.map((identity) => ({ identity })) },
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
