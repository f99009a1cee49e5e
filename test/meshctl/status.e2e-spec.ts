/*
 * `meshctl status` and `meshctl wait` as operators and CI pipelines run them: the BUILT CLI
 * (`npm run build` first) against a real API over a fresh Postgres database and the shared NATS.
 * Node statuses are written with putNodeStatus, as agents write them (the API's input contract).
 */
import { randomBytes } from 'node:crypto';
import {
  connectNats,
  type NodeStatus,
  provisionStatusBucket,
  putNodeStatus,
  statusBucket,
} from '@meshplane/messaging';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { type ApiHarness, change, service, startApi } from '../api/api-harness';
import { sleep } from '../harness';
import { expectExit, type MeshctlResult, requireBuiltMeshctl, runMeshctl } from '../harness/meshctl';

const NATS_URL = process.env.NATS_URL || 'nats://127.0.0.1:4222';
const OFFLINE_AFTER_MS = 3_000;

const cluster = `mctl-${randomBytes(4).toString('hex')}`;
let api: ApiHarness;
let nc: NatsConnection;
let kv: KV;

/** `node bin/meshctl ...argv` as the admin; `during` runs while it is running (to change node status). */
function meshctl(argv: string[], during?: () => Promise<void>): Promise<MeshctlResult> {
  return runMeshctl(argv, { server: api.url, token: api.adminToken, during });
}

function report(node: string, appliedRevision: number, over: Partial<NodeStatus> = {}): Promise<number> {
  return putNodeStatus(kv, {
    node,
    cluster,
    appliedRevision,
    appliedAt: new Date(),
    lastError: null,
    applyDurationMs: 2,
    ops: 3,
    agentVersion: '0.1.0-test',
    heartbeatAt: new Date(),
    ...over,
  });
}

async function commit(n: number): Promise<number> {
  const r = await api.call('POST', '/v1/changes', {
    body: change([service(`svc-${n}`, `127.100.30.${n}`)], [], `status e2e ${n}`),
  });
  expect(r.status).toBe(201);
  return r.body.revision;
}

beforeAll(async () => {
  requireBuiltMeshctl();
  nc = await connectNats(NATS_URL, { name: 'meshctl-status-e2e', firstConnectTimeoutMs: 10_000 });
  kv = await provisionStatusBucket(jetstream(nc), cluster);
  api = await startApi('meshctl_status', {
    cluster,
    natsUrl: NATS_URL,
    nodeOfflineAfterMs: OFFLINE_AFTER_MS,
  });
});

afterAll(async () => {
  if (nc) {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(`KV_${statusBucket(cluster)}`).catch(() => undefined);
    await nc.close();
  }
  await api?.close();
});

// The steps build on each other: one log, one set of nodes.
describe('meshctl status', () => {
  test('no nodes yet: says so, exit 0', async () => {
    const r = await meshctl(['status']);
    expectExit(r, 0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`No nodes have reported status in cluster ${cluster} (head revision 0).\n`);
  });

  test('the table: SYNCED, STALE with lag, ERROR with the error', async () => {
    for (const n of [1, 2, 3]) await commit(n);
    await report('node-a', 3);
    await report('node-b', 1);
    await report('node-c', 2, { lastError: 'bpf map mesh_backends is full', failedRevision: 3 });
    const r = await meshctl(['status']);
    expectExit(r, 0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NODE\s+STATE\s+APPLIED\s+HEAD\s+LAG\s+ERROR\s+HEARTBEAT$/);
    expect(lines[1]).toMatch(/^node-a\s+SYNCED\s+3\s+3\s+0\s+\ds ago$/);
    expect(lines[2]).toMatch(/^node-b\s+STALE\s+1\s+3\s+2 \(\ds\)\s+\ds ago$/);
    expect(lines[3]).toMatch(
      /^node-c\s+ERROR\s+2\s+3\s+1 \(\ds\)\s+rev 3: bpf map mesh_backends is full\s+\ds ago$/,
    );
    expect(lines).toHaveLength(4);
  });

  test('-o json is the API response; -o yaml the same document', async () => {
    const r = await meshctl(['status', '-o', 'json']);
    expectExit(r, 0);
    const body = JSON.parse(r.stdout);
    expect(body).toMatchObject({ cluster, headRevision: 3, offlineAfterMs: OFFLINE_AFTER_MS });
    expect(body.items.map((i: { node: string; state: string }) => `${i.node}=${i.state}`)).toEqual([
      'node-a=SYNCED',
      'node-b=STALE',
      'node-c=ERROR',
    ]);
    const y = await meshctl(['status', '-o', 'yaml']);
    expectExit(y, 0);
    expect(y.stdout).toContain(`cluster: ${cluster}\n`);
    expect(y.stdout).toContain('state: ERROR\n');
  });
});

describe('meshctl wait', () => {
  test('exit 0 once every online node says it applied the revision', async () => {
    const r = await meshctl(
      ['wait', '--revision', '3', '--timeout', '20s', '--interval', '100ms'],
      async () => {
        // The run starts behind: node-b and node-c catch up while wait polls.
        await report('node-a', 3);
        await report('node-b', 2);
        await report('node-c', 2, { lastError: 'bpf map mesh_backends is full', failedRevision: 3 });
        await sleep(600);
        await report('node-a', 3);
        await report('node-b', 3);
        await report('node-c', 3);
      },
    );
    expectExit(r, 0);
    expect(r.stdout).toBe('revision 3 is applied on all 3 online nodes\n');
    expect(r.ms).toBeGreaterThanOrEqual(500);
  });

  test('--revision defaults to the head; already applied is exit 0 at once', async () => {
    const r = await meshctl(['wait']);
    expectExit(r, 0);
    expect(r.stdout).toBe('revision 3 is applied on all 3 online nodes\n');
  });

  test('exit 1 on timeout, naming the nodes that lag and the errors of ERROR ones', async () => {
    const head = await commit(4);
    await report('node-a', head);
    await report('node-b', 3);
    await report('node-c', 3, { lastError: 'bpf map mesh_backends is full', failedRevision: 4 });
    const r = await meshctl(['wait', '--timeout', '1s', '--interval', '100ms']);
    expectExit(r, 1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      [
        'error: timed out after 1s waiting for revision 4 on every online node',
        '  node-b: STALE at revision 3',
        '  node-c: ERROR at revision 3 (failed revision 4): bpf map mesh_backends is full',
        '',
      ].join('\n'),
    );
    expect(r.ms).toBeGreaterThanOrEqual(1_000);
    expect(r.ms).toBeLessThan(10_000);
  });

  test('OFFLINE nodes are not waited for; with every node offline, wait times out', async () => {
    await report('node-a', 4);
    // node-b and node-c stop heartbeating (last report above) and turn OFFLINE after 3 s.
    await sleep(OFFLINE_AFTER_MS + 200);
    await report('node-a', 4);
    const r = await meshctl(['wait', '--revision', '4', '--timeout', '5s']);
    expectExit(r, 0);
    expect(r.stdout).toBe(
      'revision 4 is applied on all 1 online node (2 offline nodes not counted: node-b, node-c)\n',
    );
    await sleep(OFFLINE_AFTER_MS + 200);
    const none = await meshctl(['wait', '--revision', '4', '--timeout', '500ms', '--interval', '100ms']);
    expectExit(none, 1);
    expect(none.stderr).toContain('no node is online (3 offline: node-a, node-b, node-c)');
  });
});
