import type { EventStore } from '@meshplane/event-store';
import {
  DUPLICATE_WINDOW_MS,
  isWrongLastSequence,
  publishRevision,
  revisionPublishedAt,
  streamName,
} from '@meshplane/messaging';
import { jetstream, StorageType } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { nanos } from '@nats-io/transport-node';
import { loadRelayConfig, type RelayHandle, startRelay } from '../../services/relay/src';
import { createLogger } from '../../services/relay/src/logger';
import { RelayMetrics } from '../../services/relay/src/metrics';
import { RevisionPublisher } from '../../services/relay/src/publisher';
import { createTestDatabase, type TestDatabase, waitFor } from '../harness';
import {
  commit,
  deleteClusterNats,
  expectStreamMatchesLog,
  type NatsTools,
  natsTools,
  openLog,
  randomCluster,
  readStream,
  waitForStream,
} from './helpers';

const NATS_URL = process.env.NATS_URL || 'nats://127.0.0.1:4222';

describe('relay (shared Postgres and NATS, in-process)', () => {
  const cluster = randomCluster();
  let db: TestDatabase;
  let store: EventStore;
  let nats: NatsTools;
  const relays: RelayHandle[] = [];
  const logs: Record<string, unknown>[] = [];

  const start = (env: Record<string, string> = {}, url?: string) =>
    startRelay({
      ...loadRelayConfig({
        MESH_CLUSTER: cluster,
        DATABASE_URL: url ?? db.url,
        NATS_URL,
        MESH_RELAY_LOCK_RETRY_MS: '100',
        ...env,
      }),
      logSink: (l) => logs.push(l),
    }).then((r) => {
      relays.push(r);
      return r;
    });

  beforeAll(async () => {
    db = await createTestDatabase('relay');
    store = await openLog(db.url, cluster);
    nats = await natsTools(NATS_URL);
  });

  afterEach(async () => {
    await Promise.all(relays.splice(0).map((r) => r.stop()));
  });

  afterAll(async () => {
    await deleteClusterNats(nats.jsm, cluster);
    await nats?.close();
    await store?.close();
    await db?.drop();
  });

  it('a relay started after 50 commits catches up, in order, stream sequence == revision', async () => {
    const committed = await commit(store, 50);
    const relay = await start();
    await waitForStream(nats.jsm, cluster, 50);
    const { msgs } = await expectStreamMatchesLog(nats.jsm, cluster, store);
    expect(msgs).toHaveLength(50);
    // Trace context travels as W3C headers; the others carry none.
    for (const [i, m] of msgs.entries()) {
      const tp = committed[i]!.traceContext;
      if (tp) expect(m.header.get('traceparent')).toBe(tp);
      else expect(m.header.has('traceparent')).toBe(false);
      expect(m.header.get('Mesh-Cluster')).toBe(cluster);
      expect(m.header.get('Mesh-Hash')).toBe(committed[i]!.hash);
    }
    await waitFor(() => relay.metrics.lastPublishedRevision === 50, { what: 'metrics' });
    expect(relay.metrics).toMatchObject({ role: 'leader', headRevision: 50, lagRevisions: 0 });
    // The status bucket is provisioned too (history 1, file storage).
    const status = await (await new Kvm(jetstream(nats.nc)).open(`mesh_status_${cluster}`)).status();
    expect(status.history).toBe(1);
  });

  it('wakes on NOTIFY: a commit is published long before the (disabled) poll', async () => {
    const relay = await start({ MESH_RELAY_POLL_MS: '600000' });
    await waitFor(() => relay.metrics.isLeader && relay.metrics.lastPublishedRevision === 50, {
      what: 'relay to resume at 50',
    });
    const t0 = Date.now();
    const [cs] = await commit(store, 1, 'notify');
    await waitForStream(nats.jsm, cluster, cs!.revision, 5_000);
    expect(Date.now() - t0).toBeLessThan(2_000);
    // The publish time is the JetStream message timestamp; nothing is written to the log for it.
    const at = await revisionPublishedAt(nats.jsm, cluster, cs!.revision);
    expect(at!.getTime()).toBeGreaterThanOrEqual(cs!.createdAt.getTime() - 1_000);
    expect(relay.metrics.publishedTotal).toBe(1); // resumed from the stream: nothing republished
  });

  it('structured logs carry the revisions and the cluster', async () => {
    const line = logs.find((l) => l.msg === 'published revisions');
    expect(line).toMatchObject({ level: 'info', service: 'relay', cluster, from: 1, to: 50, count: 50 });
    expect(typeof line!.time).toBe('string');
  });

  it('two relays in one cluster: only the lock holder publishes', async () => {
    const a = await start();
    await waitFor(() => a.metrics.isLeader, { what: 'a to lead' });
    const b = await start();
    await waitFor(() => b.metrics.role === 'standby', { what: 'b to stand by' });
    const head = (await store.head()).revision;
    await commit(store, 10, 'pair');
    await waitForStream(nats.jsm, cluster, head + 10);
    await new Promise((r) => setTimeout(r, 300));
    expect(a.metrics.publishedTotal).toBe(10);
    expect(b.metrics.publishedTotal).toBe(0);
    expect(b.metrics.isLeader).toBe(false);
    // Stopping the leader releases the lock; the standby takes over and continues.
    await a.stop();
    await waitFor(() => b.metrics.isLeader, { timeoutMs: 5_000, what: 'b to take over' });
    await commit(store, 3, 'after');
    await waitForStream(nats.jsm, cluster, head + 13);
    expect(b.metrics.publishedTotal).toBe(3);
    await expectStreamMatchesLog(nats.jsm, cluster, store);
  });

  it('refuses to publish when the stream is ahead of the database (restored from an old backup)', async () => {
    const before = await readStream(nats.jsm, cluster);
    const other = await createTestDatabase('relay_restored');
    const restored = await openLog(other.url, cluster);
    try {
      await commit(restored, 3, 'restored');
      const relay = await start({}, other.url);
      await waitFor(() => relay.metrics.blockedReason, { what: 'relay to refuse' });
      expect(relay.metrics.blockedReason).toMatch(/ends at revision \d+ but the database head is 3/);
      expect(logs.some((l) => l.level === 'error' && l.msg === 'refusing to publish')).toBe(true);
      // Even once the restored log grows past the stream, the tails differ: still refused.
      await commit(restored, before.length, 'diverged');
      await waitFor(() => /diverged/.test(String(relay.metrics.blockedReason)), {
        timeoutMs: 15_000,
        what: 'divergence to be detected',
      });
      expect((await readStream(nats.jsm, cluster)).length).toBe(before.length);
      await relay.stop();
    } finally {
      await restored.close();
      await other.drop();
    }
  });

  it('refuses a database of another cluster', async () => {
    const other = await createTestDatabase('relay_other');
    const foreign = await openLog(other.url, 'someone-else');
    const otherCluster = randomCluster('rx');
    try {
      await commit(foreign, 2, 'foreign');
      const relay = await startRelay({
        ...loadRelayConfig({ MESH_CLUSTER: otherCluster, DATABASE_URL: other.url, NATS_URL }),
        logSink: () => undefined,
      });
      relays.push(relay);
      await waitFor(() => relay.metrics.blockedReason, { what: 'relay to refuse' });
      expect(relay.metrics.blockedReason).toMatch(/belongs to cluster "someone-else"/);
      expect(await nats.jsm.streams.info(streamName(otherCluster)).then((i) => i.state.messages)).toBe(0);
    } finally {
      await foreign.close();
      await deleteClusterNats(nats.jsm, otherCluster);
      await other.drop();
    }
  });
});

describe('RevisionPublisher against a stream that moved (10071)', () => {
  const cluster = randomCluster('rw');
  let db: TestDatabase;
  let store: EventStore;
  let nats: NatsTools;

  beforeAll(async () => {
    db = await createTestDatabase('relay_10071');
    store = await openLog(db.url, cluster);
    nats = await natsTools(NATS_URL);
    // A dedupe window this short lets a stale publisher hit the sequence guard instead of dedupe.
    await nats.jsm.streams.add({
      name: streamName(cluster),
      subjects: [`mesh.${cluster}.revisions`],
      storage: StorageType.File,
      duplicate_window: nanos(100),
    });
  });

  afterAll(async () => {
    await deleteClusterNats(nats.jsm, cluster);
    await nats?.close();
    await store?.close();
    await db?.drop();
  });

  it('re-reads the stream tail and resumes without a duplicate or a gap', async () => {
    expect(DUPLICATE_WINDOW_MS).toBe(120_000);
    const js = jetstream(nats.nc);
    const metrics = new RelayMetrics();
    const publisher = new RevisionPublisher({
      store,
      js,
      jsm: nats.jsm,
      cluster,
      stream: streamName(cluster),
      batchSize: 4,
      publishWindow: 3,
      log: createLogger('error', {}),
      metrics,
    });
    await commit(store, 5);
    expect(await publisher.catchUp(() => false)).toBe(5);
    // Another publisher (an ex-leader) stores revision 6 while this one still believes 5.
    const [six] = await commit(store, 3);
    await publishRevision(js, cluster, six!);
    await new Promise((r) => setTimeout(r, 300));
    const err = await publisher.catchUp(() => false).catch((e: unknown) => e);
    expect(isWrongLastSequence(err)).toBe(true);
    // 7 and 8 were in flight behind 6 and expected 6 and 7: the stream accepted them in order.
    expect(metrics.lastPublishedRevision).toBe(8);
    expect(await publisher.catchUp(() => false)).toBe(0); // re-read the tail: nothing left
    // With one publish in flight, the conflict stops the batch and the retry resumes after it.
    const [nine] = await commit(store, 2);
    await publishRevision(js, cluster, nine!);
    await new Promise((r) => setTimeout(r, 300));
    const serial = new RevisionPublisher({
      store,
      js,
      jsm: nats.jsm,
      cluster,
      stream: streamName(cluster),
      batchSize: 4,
      publishWindow: 1,
      log: createLogger('error', {}),
      metrics,
    });
    await serial.sync();
    await commit(store, 1);
    await publishRevision(js, cluster, (await store.getChangeSet(10))!);
    await new Promise((r) => setTimeout(r, 300));
    expect(isWrongLastSequence(await serial.catchUp(() => false).catch((e: unknown) => e))).toBe(true);
    expect(await serial.catchUp(() => false)).toBe(1); // resynced at 10, published 11
    expect(metrics.resyncsTotal).toBe(0); // counted by the relay loop, not the publisher
    await expectStreamMatchesLog(nats.jsm, cluster, store);
  });

  it('stops before the next publish when told to', async () => {
    const js = jetstream(nats.nc);
    const publisher = new RevisionPublisher({
      store,
      js,
      jsm: nats.jsm,
      cluster,
      stream: streamName(cluster),
      batchSize: 10,
      publishWindow: 1,
      log: createLogger('error', {}),
      metrics: new RelayMetrics(),
    });
    await commit(store, 5);
    let n = 0;
    expect(await publisher.catchUp(() => ++n > 2)).toBe(2);
    expect(await publisher.catchUp(() => false)).toBe(3);
    await expectStreamMatchesLog(nats.jsm, cluster, store);
  });
});
