/*
 * GET /v1/nodes and GET /v1/revisions/:rev/propagation against the real Postgres and NATS. Node
 * statuses are written with putNodeStatus exactly as agents write them: that KV value is the API's
 * input contract (the agent itself is tested elsewhere). Revisions are committed through the API
 * and published with publishRevision, as the relay does, for publishedAt.
 */
import { randomBytes } from 'node:crypto';
import { EventStore } from '@meshplane/event-store';
import {
  connectNats,
  getRevisionMessage,
  type NodeStatus,
  provisionRevisionStream,
  provisionStatusBucket,
  publishRevision,
  putNodeStatus,
  statusBucket,
  streamName,
} from '@meshplane/messaging';
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { freePort, PrivateNats, sleep, waitFor } from '../harness';
import { type ApiHarness, change, service, startApi } from './api-harness';

const NATS_URL = process.env.NATS_URL || 'nats://127.0.0.1:4222';
const OFFLINE_AFTER_MS = 1_500;

const cluster = `nodes-${randomBytes(4).toString('hex')}`;
let api: ApiHarness;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let kv: KV;
let store: EventStore;
const commits = new Map<number, Date>();

/** A status as an agent reports it, heartbeat now unless given. */
function status(node: string, appliedRevision: number, over: Partial<NodeStatus> = {}): NodeStatus {
  return {
    node,
    cluster,
    appliedRevision,
    appliedAt: new Date(),
    lastError: null,
    applyDurationMs: 4,
    ops: 7,
    agentVersion: '0.1.0-test',
    heartbeatAt: new Date(),
    state: 'READY',
    ...over,
  };
}

async function commit(n: number): Promise<number> {
  const r = await api.call('POST', '/v1/changes', {
    body: change([service(`svc-${n}`, `127.100.20.${n}`)], [], `nodes e2e ${n}`),
  });
  expect(r.status).toBe(201);
  const cs = await store.getChangeSet(r.body.revision);
  commits.set(cs!.revision, cs!.createdAt);
  return r.body.revision;
}

// biome-ignore lint/suspicious/noExplicitAny: response rows are asserted field by field
const byNode = (items: any[]): Record<string, any> => Object.fromEntries(items.map((i) => [i.node, i]));

beforeAll(async () => {
  nc = await connectNats(NATS_URL, { name: 'nodes-e2e', firstConnectTimeoutMs: 10_000 });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
  api = await startApi('nodes', { cluster, natsUrl: NATS_URL, nodeOfflineAfterMs: OFFLINE_AFTER_MS });
  store = await EventStore.open({ databaseUrl: api.db.url, cluster, poolSize: 2 });
});

afterAll(async () => {
  for (const name of [streamName(cluster), `KV_${statusBucket(cluster)}`]) {
    await jsm?.streams.delete(name).catch(() => undefined);
  }
  await nc?.close();
  await store?.close();
  await api?.close();
});

// The steps build on each other: one log, one set of nodes.
describe('node status', () => {
  test('before any agent or relay created the bucket: no nodes, no error', async () => {
    const r = await api.call('GET', '/v1/nodes');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ cluster, headRevision: 0, offlineAfterMs: OFFLINE_AFTER_MS, items: [] });
  });

  test('SYNCED, STALE with lag, ERROR with the error, each against the head', async () => {
    kv = await provisionStatusBucket(js, cluster);
    await provisionRevisionStream(jsm, cluster);
    for (const n of [1, 2, 3]) await commit(n);
    await sleep(50); // so that lagSeconds is measurably > 0
    await Promise.all([
      putNodeStatus(kv, status('node-synced', 3)),
      putNodeStatus(kv, status('node-stale', 1, { state: 'APPLYING' })),
      putNodeStatus(
        kv,
        status('node-error', 2, {
          lastError: 'bpf map mesh_backends is full',
          failedRevision: 3,
          lastErrorAt: new Date(),
          state: 'ERROR',
        }),
      ),
    ]);
    const before = Date.now();
    const r = await api.call('GET', '/v1/nodes');
    const after = Date.now();
    expect(r.status).toBe(200);
    expect(r.body.headRevision).toBe(3);
    expect(r.body.items.map((i: { node: string }) => i.node)).toEqual([
      'node-error',
      'node-stale',
      'node-synced',
    ]);
    const nodes = byNode(r.body.items);
    expect(nodes['node-synced']).toMatchObject({
      state: 'SYNCED',
      appliedRevision: 3,
      lagRevisions: 0,
      lagSeconds: 0,
      lastError: null,
      failedRevision: null,
      applyDurationMs: 4,
      ops: 7,
      agentVersion: '0.1.0-test',
      agentState: 'READY',
      message: null,
    });
    expect(Date.parse(nodes['node-synced'].heartbeatAt)).toBeLessThanOrEqual(after);
    // STALE: 2 behind; lag measured from the commit of revision 2, the first it has not applied.
    const stale = nodes['node-stale'];
    expect(stale).toMatchObject({
      state: 'STALE',
      appliedRevision: 1,
      lagRevisions: 2,
      agentState: 'APPLYING',
    });
    const since2 = commits.get(2)!.getTime();
    expect(stale.lagSeconds).toBeGreaterThanOrEqual((before - since2) / 1000 - 0.01);
    expect(stale.lagSeconds).toBeLessThanOrEqual((after - since2) / 1000 + 0.01);
    expect(nodes['node-error']).toMatchObject({
      state: 'ERROR',
      appliedRevision: 2,
      lagRevisions: 1,
      lastError: 'bpf map mesh_backends is full',
      failedRevision: 3,
      message: 'revision 3 failed to apply: bpf map mesh_backends is full',
    });
    expect(nodes['node-error'].lagSeconds).toBeGreaterThan(0);
  });

  test('a node that stops heartbeating turns OFFLINE after the timeout, and back when it beats again', async () => {
    await putNodeStatus(kv, status('node-quiet', 3));
    const fresh = byNode((await api.call('GET', '/v1/nodes')).body.items);
    expect(fresh['node-quiet'].state).toBe('SYNCED');
    const offline = await waitFor(
      async () => {
        const n = byNode((await api.call('GET', '/v1/nodes')).body.items)['node-quiet'];
        return n.state === 'OFFLINE' ? n : undefined;
      },
      { timeoutMs: OFFLINE_AFTER_MS * 4, intervalMs: 100, what: 'node-quiet to turn OFFLINE' },
    );
    expect(offline.heartbeatAgeSeconds).toBeGreaterThan(OFFLINE_AFTER_MS / 1000);
    expect(offline.message).toMatch(/^no heartbeat for [\d.]+s \(offline after 1.5s\)$/);
    await putNodeStatus(kv, status('node-quiet', 3));
    expect(byNode((await api.call('GET', '/v1/nodes')).body.items)['node-quiet'].state).toBe('SYNCED');
  });

  test('viewer role is enough; no token is 401', async () => {
    const t = await api.call('POST', '/v1/tokens', { body: { name: 'nodes-viewer', role: 'viewer' } });
    expect(t.status).toBe(201);
    expect((await api.call('GET', '/v1/nodes', { token: t.body.token })).status).toBe(200);
    expect((await api.call('GET', '/v1/revisions/1/propagation', { token: t.body.token })).status).toBe(200);
    expect((await api.call('GET', '/v1/nodes', { token: null })).status).toBe(401);
  });
});

describe('propagation of one revision', () => {
  test('committed, published (the JetStream timestamp), applied on each node with latency', async () => {
    for (const rev of [1, 2]) await publishRevision(js, cluster, (await store.getChangeSet(rev))!);
    const c1 = commits.get(1)!.getTime();
    const c2 = commits.get(2)!.getTime();
    const c3 = commits.get(3)!.getTime();
    const entry = (revision: number, ms: number) => ({ revision, appliedAt: new Date(ms), durationMs: 2 });
    await Promise.all([
      // Applied 1, then 2 and 3 coalesced into one apply.
      putNodeStatus(kv, status('node-synced', 3, { recentApplies: [entry(1, c1 + 40), entry(3, c3 + 25)] })),
      putNodeStatus(kv, status('node-stale', 1, { recentApplies: [entry(1, c1 + 30)] })),
      putNodeStatus(
        kv,
        status('node-error', 2, {
          recentApplies: [entry(1, c1 + 10), entry(2, c2 + 15)],
          lastError: 'bpf map mesh_backends is full',
          failedRevision: 3,
        }),
      ),
      // Bootstrapped at 3 from a snapshot: its history cannot say when it got revision 2.
      putNodeStatus(kv, status('node-quiet', 3, { recentApplies: [entry(3, c3 + 60)] })),
    ]);

    const r = await api.call('GET', '/v1/revisions/2/propagation');
    expect(r.status).toBe(200);
    const stored = await getRevisionMessage(jsm, cluster, 2);
    expect(r.body).toMatchObject({
      revision: 2,
      committedAt: commits.get(2)!.toISOString(),
      publishedAt: stored!.time.toISOString(),
      publishLatencyMs: stored!.time.getTime() - c2,
    });
    const nodes = byNode(r.body.nodes);
    expect(nodes['node-synced']).toEqual({
      node: 'node-synced',
      state: 'APPLIED',
      appliedRevision: 3,
      appliedAt: new Date(c3 + 25).toISOString(),
      latencyMs: c3 + 25 - c2,
      receivedAt: null,
      detail: null,
    });
    expect(nodes['node-error']).toMatchObject({ state: 'APPLIED', latencyMs: 15 });
    expect(nodes['node-stale']).toMatchObject({
      state: 'PENDING',
      appliedAt: null,
      latencyMs: null,
      detail: 'at revision 1',
    });
    expect(nodes['node-quiet']).toMatchObject({ state: 'APPLIED', appliedAt: null, latencyMs: null });
    expect(nodes['node-quiet'].detail).toMatch(/^applied \(time unknown\)/);

    // Revision 3 is committed but not published yet; node-error failed on it.
    const r3 = await api.call('GET', '/v1/revisions/3/propagation');
    expect(r3.status).toBe(200);
    expect(r3.body).toMatchObject({ revision: 3, publishedAt: null, publishLatencyMs: null });
    const n3 = byNode(r3.body.nodes);
    expect(n3['node-error']).toMatchObject({
      state: 'ERROR',
      detail: 'revision 3 failed to apply: bpf map mesh_backends is full',
    });
    expect(n3['node-quiet']).toMatchObject({ state: 'APPLIED', latencyMs: 60 });
  });

  test('a revision that does not exist is 404; a malformed one 400', async () => {
    for (const rev of ['0', '99']) {
      const r = await api.call('GET', `/v1/revisions/${rev}/propagation`);
      expect(r.status).toBe(404);
      expect(r.body.error).toMatchObject({ code: 'NOT_FOUND', message: `revision ${rev} does not exist` });
    }
    const bad = await api.call('GET', '/v1/revisions/abc/propagation');
    expect(bad.status).toBe(400);
    expect(bad.body.error.details).toEqual([{ path: 'rev', message: 'must be a non-negative integer' }]);
  });
});

describe('without NATS', () => {
  test('unreachable NATS: node routes answer 503 UNAVAILABLE; the rest of the API works', async () => {
    const closedPort = await freePort();
    const down = await startApi('nodes_down', { cluster, natsUrl: `nats://127.0.0.1:${closedPort}` });
    try {
      const r = await down.call('GET', '/v1/nodes');
      expect(r.status).toBe(503);
      expect(r.body.error.code).toBe('UNAVAILABLE');
      expect(r.body.error.message).toContain(`NATS at nats://127.0.0.1:${closedPort} is unreachable`);
      expect(r.body.error.message).toContain('the rest of the API is not affected');
      const w = await down.call('POST', '/v1/changes', { body: change([service('x', '127.100.21.1')]) });
      expect(w.status).toBe(201);
      expect((await down.call('GET', '/v1/revisions/1/propagation')).status).toBe(503);
      expect((await down.call('GET', '/v1/resources')).status).toBe(200);
      expect((await down.call('GET', '/readyz', { token: null })).status).toBe(200);
    } finally {
      await down.close();
    }
  });

  test('NATS going away under a connected API: 503 at once, served again after it is back', async () => {
    const nats = await PrivateNats.start();
    const priv = await startApi('nodes_flap', { cluster, natsUrl: nats.url });
    const pnc = await connectNats(nats.url, { name: 'nodes-e2e-private', firstConnectTimeoutMs: 10_000 });
    try {
      await putNodeStatus(await provisionStatusBucket(jetstream(pnc), cluster), status('node-p', 0));
      expect((await priv.call('GET', '/v1/nodes')).body.items).toHaveLength(1);
      await nats.stop();
      const started = Date.now();
      const r = await waitFor(
        async () => {
          const res = await priv.call('GET', '/v1/nodes');
          return res.status === 503 ? res : undefined;
        },
        { timeoutMs: 10_000, what: 'a 503 while NATS is down' },
      );
      expect(r.body.error.code).toBe('UNAVAILABLE');
      // Fails fast once the client knows it is disconnected, instead of waiting out a request timeout.
      const t0 = Date.now();
      expect((await priv.call('GET', '/v1/nodes')).status).toBe(503);
      expect(Date.now() - t0).toBeLessThan(1_000);
      expect(Date.now() - started).toBeLessThan(10_000);
      await nats.start();
      const back = await waitFor(
        async () => {
          const res = await priv.call('GET', '/v1/nodes');
          return res.status === 200 ? res : undefined;
        },
        { timeoutMs: 20_000, intervalMs: 200, what: 'node status again after NATS restarted' },
      );
      expect(back.body.items.map((i: { node: string }) => i.node)).toEqual(['node-p']);
    } finally {
      await pnc.close().catch(() => undefined);
      await priv.close();
      await nats.destroy();
    }
  });
});
