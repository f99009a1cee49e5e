/*
 * Node agents against the real NATS JetStream and a real event store: revisions are appended
 * to Postgres and published with publishRevision exactly as the relay does, three agents run
 * in this process on MemoryMapBackends persisted to files, and their maps are compared with
 * compile(state). One cluster name per suite: its stream and status bucket are deleted after.
 */
import { fromByteString } from '@meshplane/dataplane';
import type { EventStore } from '@meshplane/event-store';
import { streamName } from '@meshplane/messaging';
import { policy, route, service as svc, workload as wl } from '../../libs/dataplane/src/test-fixtures';
import type { AgentConfig, Logger } from '../../services/agent/src';
import { openStoreFixture, type StoreFixture } from '../event-store/fixture';
import { waitFor } from '../harness';
import { type ClusterFixture, clusterFixture, expectMapsMatch, type RunningAgent, runAgent } from './fixture';

let f: ClusterFixture;
let db: StoreFixture;
let store: EventStore;
const agents = new Map<string, RunningAgent>();
const NODES = ['n1', 'n2', 'n3'];

const snapshotOf = (s: EventStore) => async () => {
  const state = await s.currentState();
  return { revision: state.revision, state };
};

async function start(node: string, over: Partial<AgentConfig> = {}, log?: Logger): Promise<RunningAgent> {
  // n3 has no API: it rebuilds its state by replaying the stream; the others bootstrap from a snapshot.
  const deps = node === 'n3' ? {} : { snapshot: snapshotOf(store) };
  const a = await runAgent(f, node, log ? { ...deps, log } : deps, over);
  agents.set(node, a);
  return a;
}

async function converged(revision: number, nodes = NODES): Promise<void> {
  const state = await store.currentState();
  expect(state.revision).toBe(revision);
  for (const node of nodes) {
    const a = agents.get(node)!;
    await a.handle.waitForRevision(revision, 20_000);
    await expectMapsMatch(a.backend, state, node);
  }
}

beforeAll(async () => {
  f = await clusterFixture('agent');
  db = await openStoreFixture('agent_e2e', { cluster: f.cluster });
  store = db.store;
});

afterAll(async () => {
  for (const a of agents.values()) await a.handle.stop().catch(() => undefined);
  await db?.close();
  await f?.close();
});

describe('node agents', () => {
  it('three agents converge, each holding exactly compile(state) for its node', async () => {
    for (const n of NODES) await start(n);
    await f.commit(store, [
      svc('web', '127.100.1.1', { ports: [{ port: 80, protocol: 'TCP', targetPort: 8080 }] }),
      wl('web-1', '127.0.1.1', 'n1', { labels: { app: 'web', track: 'stable' } }),
      wl('web-2', '127.0.1.2', 'n2', { labels: { app: 'web', track: 'stable' } }),
      wl('client-1', '127.0.1.9', 'n3', { labels: { app: 'client' }, identity: 'client' }),
    ]);
    await f.commit(store, [policy('web-allow', 'web', 'ALLOW', ['client'])]);
    const head = await f.commit(store, [
      wl('web-3', '127.0.1.3', 'n3', { labels: { app: 'web', track: 'canary' } }),
      route('web', 'web', [
        { selector: { track: 'stable' }, weight: 90 },
        { selector: { track: 'canary' }, weight: 10 },
      ]),
    ]);
    await converged(head);
    const info = await f.jsm.streams.info(streamName(f.cluster));
    expect(info.state.last_seq).toBe(head);

    for (const n of NODES) {
      const s = await waitFor(async () => {
        const st = await f.nodeStatus(n);
        return st?.appliedRevision === head ? st : undefined;
      });
      expect(s).toMatchObject({
        node: n,
        cluster: f.cluster,
        lastError: null,
        state: 'READY',
        agentVersion: '0.1.0-e2e',
      });
      expect(s.recentApplies!.at(-1)!.revision).toBe(head);
    }
  });

  it('a restarted agent adopts its persisted maps and writes nothing when nothing changed', async () => {
    const head = (await store.currentState()).revision;
    const old = agents.get('n1')!;
    const history = old.handle.status().recentApplies!;
    await old.handle.stop();
    const { handle, backend } = await start('n1');
    await waitFor(() => handle.status().state === 'READY', { what: 'n1 ready after restart' });
    expect(handle.status().appliedRevision).toBe(head);
    // The propagation history of the node survives the restart (read back from its last status).
    expect(history.length).toBeGreaterThan(0);
    expect(handle.status().recentApplies).toEqual(history);
    expect(backend.writes).toBe(0);
    await expectMapsMatch(backend, await store.currentState(), 'n1');
  });

  it('an agent that was down catches up: revisions in order, coalesced, none applied twice', async () => {
    const down = agents.get('n2')!;
    const before = down.handle.status().appliedRevision;
    await down.handle.stop();
    let head = 0;
    for (let i = 0; i < 12; i++) {
      head = await f.commit(store, [
        svc(`api-${i}`, `127.100.2.${i + 1}`),
        wl(`api-${i}-1`, `127.0.1.${20 + i}`, 'n1'),
      ]);
    }
    const { handle } = await start('n2');
    await converged(head);
    // History restored from before the restart (up to its checkpoint), then what it applied since.
    const seen = handle.status().recentApplies!.map((r) => r.revision);
    const since = seen.filter((r) => r > before);
    // The stream held the whole backlog when the agent came back: one diff, straight to the head.
    expect(since).toEqual([head]);
    expect(seen.slice(seen.length - since.length)).toEqual(since);
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.at(-1)).toBe(head);
    // The running agents saw the same revisions one by one or coalesced, never out of order.
    for (const n of ['n1', 'n3']) {
      const revs = agents
        .get(n)!
        .handle.status()
        .recentApplies!.map((r) => r.revision);
      expect([...revs].sort((a, b) => a - b)).toEqual(revs);
    }
  });

  it('a failing backend reports ERROR with the reason, keeps its checkpoint, then SYNCs once the fault is gone', async () => {
    const n3 = agents.get('n3')!;
    const before = n3.handle.status().appliedRevision;
    n3.backend.injectFault({ map: 'mesh_services', code: 'EIO' });
    const head = await f.commit(store, [svc('broken', '127.100.3.1'), wl('broken-1', '127.0.1.60', 'n2')]);
    const failed = await waitFor(async () => {
      const s = await f.nodeStatus('n3');
      return s?.state === 'ERROR' ? s : undefined;
    });
    expect(failed.lastError).toMatch(/update mesh_services: EIO/);
    expect(failed.failedRevision).toBe(head);
    expect(failed.appliedRevision).toBe(before);
    expect((await n3.backend.readMeta())!.appliedRevision).toBe(before);
    // The healthy nodes are not held back.
    await converged(head, ['n1', 'n2']);

    n3.backend.clearFaults();
    const ok = await waitFor(
      async () => {
        const s = await f.nodeStatus('n3');
        return s?.appliedRevision === head && s.state === 'READY' ? s : undefined;
      },
      { timeoutMs: 15_000, what: 'n3 synced after the fault' },
    );
    expect(ok.lastError).toBeNull();
    await converged(head);
  });

  it('a full pass repairs an entry deleted behind the agent', async () => {
    const n1 = agents.get('n1')!;
    const [key] = [...(await n1.handle.reconciler.actual()).mesh_slots.keys()];
    await n1.backend.delete('mesh_slots', [fromByteString(key!)]);
    const pass = await n1.handle.reconciler.fullPass();
    expect(pass).toMatchObject({ ok: true, ops: 1 });
    await expectMapsMatch(n1.backend, await store.currentState(), 'n1');
  });

  it('a revision consumer lost on the server: the agent opens a new one after two missed heartbeats', async () => {
    const warnings: Array<[string, Record<string, unknown> | undefined]> = [];
    const log: Logger = {
      info: () => undefined,
      warn: (m, x) => void warnings.push([m, x]),
      error: () => undefined,
    };
    await agents.get('n3')!.handle.stop();
    const { handle } = await start('n3', { consumerHeartbeatMs: 500 }, log);
    await waitFor(() => handle.status().state === 'READY', { what: 'n3 ready' });
    // n3's consumer is the newest one on the stream (the other agents' were made before).
    const consumers = [];
    for await (const c of f.jsm.consumers.list(streamName(f.cluster))) consumers.push(c);
    const newest = consumers.sort((a, b) => Date.parse(b.created) - Date.parse(a.created))[0]!;
    await f.jsm.consumers.delete(streamName(f.cluster), newest.name);
    const head = await f.commit(store, [
      svc('after-loss', '127.100.4.1'),
      wl('after-loss-1', '127.0.1.70', 'n3'),
    ]);
    await handle.waitForRevision(head, 10_000);
    await expectMapsMatch(agents.get('n3')!.backend, await store.currentState(), 'n3');
    expect(warnings).toContainEqual([
      'revision consumer restarted',
      expect.objectContaining({ reason: expect.stringMatching(/heartbeats missed/) }),
    ]);
    await converged(head, ['n1', 'n2']);
  });
});
