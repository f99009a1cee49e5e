import type { EventStore } from '@meshplane/event-store';
import { createTestDatabase, kill9Child, type TestDatabase, waitFor } from '../harness';
import {
  commit,
  deleteClusterNats,
  expectStreamMatchesLog,
  type NatsTools,
  natsTools,
  openLog,
  type RelayProcess,
  randomCluster,
  relayCommand,
  spawnRelay,
  waitForStream,
} from './helpers';

const NATS_URL = process.env.NATS_URL || 'nats://127.0.0.1:4222';

/**
 * Relays as real child processes (the built dist when fresh, else the sources through swc), so a
 * kill -9 is a real crash: no finally blocks, no unlock, the socket just closes.
 */
describe('relay failover (child processes)', () => {
  const cluster = randomCluster('rf');
  let db: TestDatabase;
  let store: EventStore;
  let nats: NatsTools;
  const procs: RelayProcess[] = [];

  const relay = (name: string) => {
    const p = spawnRelay(name, {
      MESH_CLUSTER: cluster,
      DATABASE_URL: db.url,
      NATS_URL,
      MESH_RELAY_LOCK_RETRY_MS: '500',
    });
    procs.push(p);
    return p;
  };
  const isLeader = (l: Record<string, unknown>) => l.msg === 'leadership acquired';

  beforeAll(async () => {
    db = await createTestDatabase('relay_failover');
    store = await openLog(db.url, cluster);
    nats = await natsTools(NATS_URL);
    process.stdout.write(`relay children run from ${relayCommand().from}\n`);
  });

  afterAll(async () => {
    await Promise.all(procs.map((p) => kill9Child(p.child).catch(() => undefined)));
    await deleteClusterNats(nats.jsm, cluster);
    await nats?.close();
    await store?.close();
    await db?.drop();
  });

  it('exactly one of two relays publishes; kill -9 of the leader mid-stream loses and repeats nothing', async () => {
    const a = relay('relay-a');
    await a.waitForLog(isLeader, 'to lead');
    const b = relay('relay-b');
    await b.waitForLog((l) => l.msg === 'standby: another relay holds the leader lock', 'to stand by');

    await commit(store, 30, 'before');
    await waitForStream(nats.jsm, cluster, 30);
    // The stream holds a revision before the relay's log line about it reaches this process.
    await waitFor(() => a.published().length >= 30, { what: "relay-a's log of 30 publishes" });
    expect(a.published()).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(b.published()).toEqual([]);

    // Commit continuously while the leader is killed: some revisions land before, some during
    // the takeover, some after.
    let committing = true;
    const committer = (async () => {
      let n = 0;
      while (committing && n < 400) {
        await commit(store, 1, 'during');
        n++;
        await new Promise((r) => setTimeout(r, 5));
      }
      return n;
    })();
    await waitFor(async () => (await store.head()).revision >= 60, { what: 'commits to flow' });
    const killedAt = Date.now();
    await kill9Child(a.child);
    await b.waitForLog(isLeader, 'to take over', 10_000);
    const takeoverMs = Date.now() - killedAt;
    await new Promise((r) => setTimeout(r, 500));
    committing = false;
    const during = await committer;
    await commit(store, 5, 'after');

    const head = (await store.head()).revision;
    expect(head).toBe(30 + during + 5);
    await waitForStream(nats.jsm, cluster, head);
    const { msgs } = await expectStreamMatchesLog(nats.jsm, cluster, store);
    expect(msgs).toHaveLength(head);
    await waitFor(() => b.published().at(-1) === head, { what: "relay-b's log of the head" });
    // The standby started from the stream's tail: it never republished what the leader stored.
    const byB = b.published();
    expect(byB.length).toBeGreaterThan(0);
    expect(byB[0]).toBeGreaterThan(30);
    expect(byB).toEqual(Array.from({ length: byB.length }, (_, i) => byB[0]! + i));
    expect(byB[byB.length - 1]).toBe(head);
    // How fast is reported, not asserted (a loaded machine is no evidence either way); the
    // takeover itself is bounded by the 10 s wait above.
    process.stdout.write(
      `takeover after kill -9: ${takeoverMs} ms; ${head} revisions, ${byB.length} by the standby\n`,
    );
  });

  it('SIGTERM stops a relay cleanly and releases the lock at once', async () => {
    const b = procs[1]!;
    const c = relay('relay-c');
    await c.waitForLog((l) => l.msg === 'standby: another relay holds the leader lock', 'to stand by');
    const t0 = Date.now();
    await b.stop();
    expect(b.child.exitCode).toBe(0);
    expect(b.logs.some((l) => l.msg === 'relay stopped')).toBe(true);
    // The lock is released at once, so c takes over on its next try (lock retry 500 ms).
    await c.waitForLog(isLeader, 'to take over', 5_000);
    process.stdout.write(`takeover after SIGTERM: ${Date.now() - t0} ms\n`);
    await commit(store, 2, 'c');
    const head = (await store.head()).revision;
    await waitForStream(nats.jsm, cluster, head);
    await waitFor(() => c.published().at(-1) === head, { what: "relay-c's log of the head" });
    expect(c.published()).toEqual([head - 1, head]);
    await c.stop();
    expect(c.child.exitCode).toBe(0);
  });
});
