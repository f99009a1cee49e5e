/*
 * The agent's snapshot path against the real API (GET /v1/snapshot over HTTP): a stream that
 * keeps only the last 3 revisions has lost the start of history, so an agent with no checkpoint,
 * or with a checkpoint older than the stream, must bootstrap from the snapshot and then follow
 * the stream. Without an API it must say so in its status instead of guessing.
 */
import type { Change } from '@meshplane/domain';
import { EventStore } from '@meshplane/event-store';
import { streamName } from '@meshplane/messaging';
import { service, workload } from '../../libs/dataplane/src/test-fixtures';
import { httpSnapshotSource } from '../../services/agent/src';
import { type ApiHarness, BOOTSTRAP_TOKEN, startApi } from '../api/api-harness';
import { waitFor } from '../harness';
import { type ClusterFixture, clusterFixture, expectMapsMatch, type RunningAgent, runAgent } from './fixture';

let f: ClusterFixture;
let api: ApiHarness;
let store: EventStore;
const running: RunningAgent[] = [];

/** Commits through the API (as operators do) and publishes the change set as the relay does. */
async function commit(changes: Change[]): Promise<number> {
  const apply = changes.map((c) => ({
    kind: c.kind,
    namespace: c.namespace,
    name: c.name,
    spec: (c as { spec: unknown }).spec,
  }));
  const r = await api.call('POST', '/v1/changes', {
    body: { reason: 'agent bootstrap e2e', apply, delete: [] },
  });
  expect(r.status).toBe(201);
  const cs = await store.getChangeSet(r.body.revision);
  await f.publish(cs!);
  return cs!.revision;
}

const addService = (i: number) => [
  service(`s${i}`, `127.100.4.${i}`),
  workload(`s${i}-1`, `127.0.1.${100 + i}`, 'b2'),
];

beforeAll(async () => {
  f = await clusterFixture('agentboot', 3);
  api = await startApi('agent_boot', { cluster: f.cluster });
  store = await EventStore.open({ databaseUrl: api.db.url, cluster: f.cluster, poolSize: 2 });
});

afterAll(async () => {
  for (const a of running) await a.handle.stop().catch(() => undefined);
  await store?.close();
  await api?.close();
  await f?.close();
});

describe('agent bootstrap', () => {
  it('with no checkpoint and a stream that lost revision 1, it starts from the API snapshot', async () => {
    let head = 0;
    for (let i = 1; i <= 6; i++) head = await commit(addService(i));
    const info = await f.jsm.streams.info(streamName(f.cluster));
    expect(info.state.first_seq).toBeGreaterThan(1);

    const a = await runAgent(f, 'b1', { snapshot: httpSnapshotSource(api.url, BOOTSTRAP_TOKEN) });
    running.push(a);
    await a.handle.waitForRevision(head);
    await expectMapsMatch(a.backend, await store.currentState(), 'b1');
    // Then it follows the stream.
    head = await commit(addService(7));
    await a.handle.waitForRevision(head);
    await expectMapsMatch(a.backend, await store.currentState(), 'b1');
  });

  it('without an API it reports why it cannot start instead of applying a partial history', async () => {
    const a = await runAgent(f, 'b2', { snapshot: undefined });
    running.push(a);
    const s = await waitFor(async () => {
      const st = await f.nodeStatus('b2');
      return st?.lastError ? st : undefined;
    });
    expect(s.lastError).toMatch(/starts at revision \d+ and MESH_API_URL is not set/);
    expect(s.appliedRevision).toBe(0);
    expect(a.backend.writes).toBe(0);
  });

  it('a checkpoint older than the stream goes through the snapshot and never re-applies old revisions', async () => {
    const a = running[0]!;
    const checkpoint = a.handle.status().appliedRevision;
    const history = a.handle.status().recentApplies!.map((r) => r.revision);
    await a.handle.stop();
    let head = 0;
    for (let i = 8; i <= 13; i++) head = await commit(addService(i));
    const info = await f.jsm.streams.info(streamName(f.cluster));
    expect(info.state.first_seq).toBeGreaterThan(checkpoint + 1);

    const b = await runAgent(f, 'b1', { snapshot: httpSnapshotSource(api.url, BOOTSTRAP_TOKEN) });
    running.push(b);
    await b.handle.waitForRevision(head);
    await expectMapsMatch(b.backend, await store.currentState(), 'b1');
    // The first life's history (kept across the restart), then only revisions past the checkpoint.
    const applied = b.handle.status().recentApplies!.map((r) => r.revision);
    expect(applied.slice(0, history.length)).toEqual(history);
    const since = applied.slice(history.length);
    expect(since.length).toBeGreaterThan(0);
    expect(since.every((r) => r > checkpoint)).toBe(true);
  });
});
