import { EventStore } from '@meshplane/event-store';
import {
  decodeRevision,
  getRevisionMessage,
  type NodeStatus,
  openStatusBucket,
  provisionRevisionStream,
  provisionStatusBucket,
  publishRevision,
  putNodeStatus,
  readNodeStatuses,
  readRevisionHeaders,
  revisionPublishedAt,
  streamName,
  tailStream,
} from '@meshplane/messaging';
import { jetstream, StorageType } from '@nats-io/jetstream';
import { createTestDatabase, type TestDatabase } from '../harness';
import { commit, deleteClusterNats, type NatsTools, natsTools, openLog, randomCluster } from './helpers';

const NATS_URL = process.env.NATS_URL || 'nats://127.0.0.1:4222';

describe('messaging library against the shared NATS', () => {
  const cluster = randomCluster('msg');
  let nats: NatsTools;
  let db: TestDatabase;
  let store: EventStore;

  beforeAll(async () => {
    nats = await natsTools(NATS_URL);
    db = await createTestDatabase('messaging');
    store = await openLog(db.url, cluster);
  });

  afterAll(async () => {
    await deleteClusterNats(nats.jsm, cluster);
    await deleteClusterNats(nats.jsm, `${cluster}-x`);
    await nats?.close();
    await store?.close();
    await db?.drop();
  });

  it('provisions the revision stream idempotently and updates its limits', async () => {
    const a = await provisionRevisionStream(nats.jsm, cluster);
    expect(a.action).toBe('created');
    expect(a.info.config).toMatchObject({
      name: streamName(cluster),
      storage: 'file',
      retention: 'limits',
      duplicate_window: 120_000_000_000,
      max_msgs: -1,
    });
    expect((await provisionRevisionStream(nats.jsm, cluster)).action).toBe('unchanged');
    // Racing provisioners (several relays starting at once) all succeed on the one stream.
    const raced = await Promise.all([1, 2, 3].map(() => provisionRevisionStream(nats.jsm, `${cluster}-x`)));
    expect(new Set(raced.map((r) => r.info.created)).size).toBe(1);
    const b = await provisionRevisionStream(nats.jsm, cluster, { maxMsgs: 10 });
    expect(b.action).toBe('updated');
    expect(b.info.config.max_msgs).toBe(10);
    expect((await provisionRevisionStream(nats.jsm, cluster)).info.config.max_msgs).toBe(-1);
  });

  it('refuses a same-named stream with other storage instead of touching it', async () => {
    const name = `${cluster}-mem`;
    await nats.jsm.streams.add({
      name: streamName(name),
      subjects: [`mesh.${name}.revisions`],
      storage: StorageType.Memory,
    });
    try {
      await expect(provisionRevisionStream(nats.jsm, name)).rejects.toThrow(/storage=memory/);
    } finally {
      await deleteClusterNats(nats.jsm, name);
    }
  });

  it('publishes with stream sequence == revision, dedupes retries, and rejects gaps', async () => {
    const js = jetstream(nats.nc);
    const [one, two, three] = await commit(store, 3);
    const ack = await publishRevision(js, cluster, one!);
    expect(ack).toMatchObject({ seq: 1, duplicate: false });
    // A retry of the same revision is a no-op the server reports as a duplicate.
    expect(await publishRevision(js, cluster, one!)).toMatchObject({ seq: 1, duplicate: true });
    // Skipping a revision is refused by the expected-last-sequence guard.
    await expect(publishRevision(js, cluster, three!)).rejects.toMatchObject({ code: 10071 });
    await publishRevision(js, cluster, two!);
    const msg = (await getRevisionMessage(nats.jsm, cluster, 2))!;
    expect(decodeRevision(msg.data)).toEqual(two);
    expect(readRevisionHeaders(msg.header)).toMatchObject({ revision: 2, cluster, hash: two!.hash });
    expect(msg.header.get('Nats-Msg-Id')).toBe(`${cluster}:2`);
    expect(await revisionPublishedAt(nats.jsm, cluster, 2)).toBeInstanceOf(Date);
    expect(await revisionPublishedAt(nats.jsm, cluster, 99)).toBeUndefined();
  });

  it('tailStream (what agents use) reads revisions from a checkpoint, in order', async () => {
    const js = jetstream(nats.nc);
    await publishRevision(js, cluster, (await store.getChangeSet(3))!); // committed, refused earlier
    const tail = await tailStream(nats.nc, js, nats.jsm, { stream: streamName(cluster), startSeq: 2 });
    const seen: Array<[number, number, string | undefined]> = [];
    for await (const m of tail) {
      const cs = decodeRevision(m.data);
      seen.push([m.seq, cs.revision, readRevisionHeaders(m.headers).cluster]);
      if (m.info.pending === 0) break;
    }
    expect(seen).toEqual([
      [2, 2, cluster],
      [3, 3, cluster],
    ]);
  });

  it('provisions the status bucket and round-trips node statuses', async () => {
    const js = jetstream(nats.nc);
    const kv = await provisionStatusBucket(js, cluster);
    await provisionStatusBucket(js, cluster); // idempotent
    expect((await kv.status()).history).toBe(1);
    const s: NodeStatus = {
      node: 'node-a',
      cluster,
      appliedRevision: 2,
      appliedAt: new Date(),
      lastError: null,
      applyDurationMs: 1.5,
      ops: 4,
      agentVersion: '0.1.0',
      heartbeatAt: new Date(),
      state: 'READY',
    };
    await putNodeStatus(kv, s);
    await putNodeStatus(kv, { ...s, node: 'node-b', appliedRevision: 1 });
    await kv.put('junk', 'not json');
    const invalid: string[] = [];
    const reader = await openStatusBucket(js, cluster);
    const all = await readNodeStatuses(reader, (k) => invalid.push(k));
    expect(all.map((x) => [x.node, x.appliedRevision])).toEqual([
      ['node-a', 2],
      ['node-b', 1],
    ]);
    expect(all[0]).toEqual(s);
    expect(invalid).toEqual(['junk']);
  });
});
