/*
 * The federation model in cluster B, with the real pieces: B's API over its own database,
 * import change sets appended through B's event store exactly as the importer does it
 * (exportedView in A → importChanges/importHeader/validateImport in B), and an agent of B
 * (memory backend, revisions published to a per-suite JetStream stream as the relay does).
 * Cluster A is its state as A's log would hold it (the domain reducer); the NATS transport
 * between the clusters is tested in link.e2e-spec.ts.
 */
import { logicalView, readMaps } from '@meshplane/dataplane';
import {
  applyChanges,
  type Change,
  type CommittedEvent,
  ConflictError,
  emptyState,
  exportedView,
  importChangeList,
  importChanges,
  importHeader,
  importIdempotencyKey,
  type MeshState,
  validateChangeSet,
  validateImport,
  withdrawChanges,
  withdrawHeader,
} from '@meshplane/domain';
import { type AppendResult, EventStore } from '@meshplane/event-store';
import { service as svc, workload as wl } from '../../libs/dataplane/src/test-fixtures';
import {
  type ClusterFixture,
  clusterFixture,
  expectMapsMatch,
  type RunningAgent,
  runAgent,
} from '../agent/fixture';
import { type ApiHarness, change, service, startApi, workload } from '../api/api-harness';

const PEER = 'east';
const VIP = '127.100.5.1';
const FRONTEND = `${VIP}:9080/TCP`;

let f: ClusterFixture;
let api: ApiHarness;
let store: EventStore;
let agent: RunningAgent | undefined;
let published = 0;

// Cluster A: its own state and export sequence.
let a: MeshState = emptyState();
let exportSeq = 0;
const aCommit = (changes: Change[]) => {
  a = applyChanges(a, changes, a.revision + 1);
};
const withSpec = (c: Change, extra: Record<string, unknown>): Change =>
  c.op === 'put' ? { ...c, spec: { ...c.spec, ...extra } } : c;

/** What B's importer does with one export message from A. */
async function importFromA(seq = ++exportSeq): Promise<AppendResult | undefined> {
  const ic = importChanges(await store.currentState(), PEER, exportedView(a, PEER));
  const changes = importChangeList(ic);
  if (changes.length === 0) return undefined;
  return store.append(changes, {
    ...importHeader(PEER, a.revision, seq),
    idempotencyKey: importIdempotencyKey(PEER, seq),
    validate: (view, effective) => validateImport(view, effective, PEER),
  });
}

const toChange = (e: CommittedEvent): Change =>
  e.op === 'put'
    ? { op: 'put', kind: e.kind, namespace: e.namespace, name: e.name, spec: e.spec ?? {}, origin: e.origin! }
    : { op: 'delete', kind: e.kind, namespace: e.namespace, name: e.name };

const post = (path: string, body: unknown) => api.call('POST', path, { body });

/** Publishes B's new revisions as the relay does; with an agent, waits until it applied them. */
async function sync(): Promise<Record<string, string[]>> {
  const head = (await store.head()).revision;
  for (let r = published + 1; r <= head; r++) await f.publish((await store.getChangeSet(r))!);
  published = head;
  if (!agent) return {};
  await agent.handle.waitForRevision(head, 20_000);
  await expectMapsMatch(agent.backend, await store.currentState(), 'n1');
  const v = logicalView(await readMaps(agent.backend));
  return Object.fromEntries(Object.entries(v.frontends).map(([k, fe]) => [k, [...fe.slots].sort()]));
}

beforeAll(async () => {
  f = await clusterFixture('fedmodel');
  api = await startApi('fed_model', { cluster: f.cluster });
  store = await EventStore.open({ databaseUrl: api.db.url, cluster: f.cluster });
  // A exports reviews (two workloads, its own targetPort); ratings stays private to A.
  aCommit([
    withSpec(svc('reviews', VIP, { ports: [{ port: 9080, protocol: 'TCP', targetPort: 9081 }] }), {
      export: true,
    }),
    wl('reviews-1', '127.0.2.1', 'a1'),
    wl('reviews-2', '127.0.2.2', 'a2'),
    svc('ratings', '127.100.5.2'),
    wl('ratings-1', '127.0.2.3', 'a1'),
  ]);
});

afterAll(async () => {
  await agent?.handle.stop().catch(() => undefined);
  await store?.close().catch(() => undefined);
  await api?.close();
  await f?.close();
});

describe('federation model in the importing cluster', () => {
  let importRevision = 0;

  it('an import change set names the peer, its revision and export sequence', async () => {
    const local = await post(
      '/v1/changes',
      change([workload('client-1', '127.0.1.9', 'client')], [], 'client'),
    );
    expect(local.status).toBe(201);

    const r = await importFromA();
    expect(r?.status).toBe('appended');
    importRevision = (r as { changeSet: { revision: number } }).changeSet.revision;

    const cs = await api.call('GET', `/v1/revisions/${importRevision}`);
    expect(cs.body).toMatchObject({
      actor: 'federation:east',
      reason: 'import from east revision 1 (export seq 1)',
      metadata: { federation: { origin: 'east', revision: 1, seq: 1 } },
    });
    const items = (await api.call('GET', '/v1/resources')).body.items as Array<Record<string, unknown>>;
    expect(items.map((i) => `${i.kind}/${i.name}@${i.origin ?? '-'}`).sort()).toEqual([
      'Service/reviews.east@east',
      'Workload/client-1@-',
      'Workload/reviews-1.east@east',
      'Workload/reviews-2.east@east',
    ]);

    // A redelivered export message writes nothing: the view is already imported, and even the
    // same changes under the same idempotency key return the original change set.
    expect(await importFromA(1)).toBeUndefined();
    const again = await store.append((await store.getChangeSet(importRevision))!.events.map(toChange), {
      ...importHeader(PEER, 1, 1),
      idempotencyKey: importIdempotencyKey(PEER, 1),
      validate: (view, effective) => validateImport(view, effective, PEER),
    });
    expect(again).toMatchObject({ status: 'replayed', changeSet: { revision: importRevision } });
    expect(await api.head()).toBe(importRevision);

    const audit = await api.call('GET', '/v1/audit?actor=federation:east');
    expect(audit.body.items.map((e: { revision: number }) => e.revision)).toEqual([importRevision]);
    const history = await api.call('GET', '/v1/resources/Service/default/reviews.east/history');
    expect(history.status).toBe(200);
    expect(JSON.stringify(history.body)).toContain('federation:east');
    expect((await api.call('GET', '/v1/audit/verify')).body).toMatchObject({ ok: true });
  });

  it('refuses local writes to imported resources with a 409 naming the owning cluster', async () => {
    const head = await api.head();
    const put = await post('/v1/changes', change([service('reviews.east', VIP)], [], 'take over'));
    expect(put.status).toBe(409);
    expect(put.body.error).toMatchObject({ code: 'CONFLICT', headRevision: head });
    expect(put.body.error.message).toMatch(/owned by cluster east/);
    expect(put.body.error.details[0].path).toBe('apply[0].name');

    const del = await post('/v1/changes', change([], [{ kind: 'Workload', name: 'reviews-1.east' }], 'drop'));
    expect(del.status).toBe(409);
    expect(del.body.error.details).toEqual([
      {
        path: 'delete[0].name',
        message: expect.stringMatching(/Workload default\/reviews-1.east is owned by cluster east/),
      },
    ]);
    expect(await api.head()).toBe(head);

    // The same rules hold in the store for any local writer (meshctl, rollback) ...
    await expect(
      store.append([{ op: 'delete', kind: 'Service', namespace: 'default', name: 'reviews.east' }], {
        actor: 'alice',
        reason: 'local',
        validate: (view, c) => validateChangeSet(view, c),
      }),
    ).rejects.toThrow(ConflictError);
    // ... and an import from one peer cannot touch another's resources or local ones.
    await expect(
      store.append([{ op: 'delete', kind: 'Workload', namespace: 'default', name: 'client-1' }], {
        ...importHeader('west', 1, 1),
        validate: (view, c) => validateImport(view, c, 'west'),
      }),
    ).rejects.toThrow(/not an import from west \(owner: local\)/);
    expect(await api.head()).toBe(head);
  });

  it('lets the local Service of a global service share its VIP, and no other', async () => {
    const other = await post('/v1/changes', change([service('legacy', VIP)], [], 'clash'));
    expect(other.status).toBe(400);
    expect(other.body.error.details[0].message).toMatch(/Service default\/reviews.east/);
    const same = await post(
      '/v1/changes',
      change([service('reviews', VIP), workload('reviews-b1', '127.0.1.1', 'reviews')], [], 'local reviews'),
    );
    expect(same.status).toBe(201);
  });

  it("B's agent prefers its local backends and fails over to A's, honoring affinity", async () => {
    await sync();
    agent = await runAgent(f, 'n1');
    expect((await sync())[FRONTEND]).toEqual(['127.0.1.1:9080/TCP']);

    // No local backend left: A's, on A's targetPort.
    expect(
      (await post('/v1/changes', change([], [{ kind: 'Workload', name: 'reviews-b1' }], 'drain b'))).status,
    ).toBe(201);
    expect((await sync())[FRONTEND]).toEqual(['127.0.2.1:9081/TCP', '127.0.2.2:9081/TCP']);

    // A scales down: the next import follows.
    aCommit([{ op: 'delete', kind: 'Workload', namespace: 'default', name: 'reviews-2' }]);
    expect((await importFromA())?.status).toBe('appended');
    expect((await sync())[FRONTEND]).toEqual(['127.0.2.1:9081/TCP']);

    // Local backend back, affinity none: both clusters by weight; remote: A's first.
    await post(
      '/v1/changes',
      change(
        [service('reviews', VIP, 9080, { affinity: 'none' }), workload('reviews-b1', '127.0.1.1', 'reviews')],
        [],
        'spread',
      ),
    );
    expect((await sync())[FRONTEND]).toEqual(['127.0.1.1:9080/TCP', '127.0.2.1:9081/TCP']);
    await post('/v1/changes', change([service('reviews', VIP, 9080, { affinity: 'remote' })], [], 'remote'));
    expect((await sync())[FRONTEND]).toEqual(['127.0.2.1:9081/TCP']);
  });

  it('a rollback in B restores local resources and leaves the imports alone', async () => {
    const before = (await api.call('GET', '/v1/resources')).body.items as Array<Record<string, unknown>>;
    const imports = before.filter((i) => i.origin === 'east');
    // Revision 1 held only client-1: everything local since goes, the imports stay.
    const r = await post('/v1/rollback', { toRevision: 1, reason: 'back to the start' });
    expect(r.status).toBe(201);
    expect(r.body.restoredFromRevision).toBe(1);
    const after = (await api.call('GET', '/v1/resources')).body.items as Array<Record<string, unknown>>;
    expect(after.filter((i) => i.origin === undefined).map((i) => i.name)).toEqual(['client-1']);
    expect(after.filter((i) => i.origin === 'east')).toEqual(imports);
    // Only A's backends remain, programmed on A's Service VIP.
    expect((await sync())[FRONTEND]).toEqual(['127.0.2.1:9081/TCP']);
  });

  it('withdrawing a peer deletes exactly its imports, as actor federation:<peer>', async () => {
    const w = withdrawChanges(await store.currentState(), PEER);
    const r = await store.append(importChangeList(w), {
      ...withdrawHeader(PEER, 'cache TTL expired'),
      validate: (view, c) => validateImport(view, c, PEER),
    });
    expect(r.status).toBe('appended');
    const items = (await api.call('GET', '/v1/resources')).body.items as Array<Record<string, unknown>>;
    expect(items.map((i) => i.name)).toEqual(['client-1']);
    expect((await sync())[FRONTEND]).toBeUndefined();
  });
});
