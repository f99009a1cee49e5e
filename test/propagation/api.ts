import { type MeshState, refKey, type StoredResource } from '@meshplane/domain';
import { migrateToLatest } from '@meshplane/event-store';
import type { INestApplication } from '@nestjs/common';
import { jsonOrText, listenApi } from '../harness/api';
import { TOKEN } from './service-process';

export { policy, route } from '../harness/resources';

/** The in-process API of the propagation suites, authenticated with the bootstrap TOKEN. */
export interface Api {
  url: string;
  app: INestApplication;
  logs: Record<string, unknown>[];
  // biome-ignore lint/suspicious/noExplicitAny: responses are asserted field by field
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<any>;
  callRaw(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
    // biome-ignore lint/suspicious/noExplicitAny: see above
  ): Promise<{ status: number; body: any; text: string }>;
  close(): Promise<void>;
}

/** The API (NestJS, in this process) over `databaseUrl` (migrated here), on a loopback port. */
export async function startApi(databaseUrl: string, cluster: string, natsUrl: string): Promise<Api> {
  await migrateToLatest(databaseUrl);
  const logs: Record<string, unknown>[] = [];
  const { app, url } = await listenApi({
    databaseUrl,
    cluster,
    natsUrl,
    bootstrapToken: TOKEN,
    logSink: (l) => logs.push(l),
  });
  const callRaw: Api['callRaw'] = async (method, p, body, headers = {}) => {
    const res = await fetch(url + p, {
      method,
      headers: {
        authorization: `Bearer ${TOKEN}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    return { status: res.status, body: jsonOrText(text), text };
  };
  return {
    url,
    app,
    logs,
    callRaw,
    async call(method, p, body, headers) {
      const r = await callRaw(method, p, body, headers);
      if (r.status >= 300) throw new Error(`${method} ${p}: HTTP ${r.status} ${r.text.slice(0, 500)}`);
      return r.body;
    },
    close: () => app.close(),
  };
}

/** POST /v1/changes; returns the new revision (fails on anything but 201). */
export async function commitChange(
  api: Api,
  apply: unknown[],
  del: unknown[] = [],
  reason = 'propagation e2e',
) {
  const r = await api.callRaw('POST', '/v1/changes', { reason, apply, delete: del });
  if (r.status !== 201) throw new Error(`POST /v1/changes: HTTP ${r.status} ${r.text.slice(0, 500)}`);
  return r.body.revision as number;
}

/*
 * Resources: loopback only (VIPs 127.100.x.y, workloads 127.0.1.x), as DESIGN.md requires; routes
 * and policies come from ../harness/resources.
 */

export function service(
  name: string,
  vip: string,
  port = 9080,
  selector: Record<string, string> = { app: name },
) {
  return { kind: 'Service', name, spec: { vip, ports: [{ port, protocol: 'TCP' }], selector } };
}

export function workload(
  name: string,
  address: string,
  node: string,
  app: string,
  opts: { version?: string; weight?: number } = {},
) {
  const spec: Record<string, unknown> = {
    address,
    node,
    labels: { app, version: opts.version ?? 'v1' },
    identity: app,
  };
  if (opts.weight !== undefined) spec.weight = opts.weight;
  return { kind: 'Workload', name, spec };
}

export const ref = (kind: string, name: string) => ({ kind, name });

/** `GET /v1/snapshot` as a MeshState (what every agent must compile). */
export async function snapshotState(api: Api): Promise<MeshState> {
  const body = (await api.call('GET', '/v1/snapshot')) as { revision: number; resources: StoredResource[] };
  const state: MeshState = { revision: body.revision, resources: new Map() };
  for (const r of body.resources) state.resources.set(refKey(r), r);
  return state;
}
