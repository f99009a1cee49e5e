import { type Change, canonicalJson, emptyState, evolveInPlace, type MeshState } from '@meshplane/domain';
import fc from 'fast-check';
import { openStoreFixture, type StoreFixture, who } from './fixture';

/** A state's resources as comparable canonical text (versions and origins included). */
function fingerprint(state: MeshState): string {
  return canonicalJson([...state.resources.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
}

async function replayFromZero(f: StoreFixture, revision: number): Promise<MeshState> {
  const state = emptyState();
  for await (const cs of f.store.readRevisions(1, { to: revision }))
    for (const e of cs.events) evolveInPlace(state, e);
  state.revision = revision;
  return state;
}

const names = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
const change: fc.Arbitrary<Change> = fc.oneof(
  fc.record({
    op: fc.constant('put' as const),
    kind: fc.constantFrom('Workload', 'Service'),
    namespace: fc.constantFrom('default', 'shop'),
    name: fc.constantFrom(...names),
    spec: fc.record({
      weight: fc.integer({ min: 1, max: 3 }),
      labels: fc.dictionary(fc.constantFrom('app', 'v'), fc.constantFrom('x', 'y')),
    }),
  }),
  fc.record({
    op: fc.constant('delete' as const),
    kind: fc.constantFrom('Workload', 'Service'),
    namespace: fc.constantFrom('default', 'shop'),
    name: fc.constantFrom(...names),
  }),
);
/** A change set never names one resource twice (the API rejects that before the store). */
const changeSet = fc.uniqueArray(change, {
  minLength: 1,
  maxLength: 4,
  selector: (c) => `${c.kind}/${c.namespace}/${c.name}`,
});

describe('event store: projection, snapshots and replay agree', () => {
  let f: StoreFixture;
  beforeAll(async () => {
    // A small interval puts several snapshots inside every generated history.
    f = await openStoreFixture('es_proj', { snapshotInterval: 4 });
  });
  afterAll(async () => {
    await f?.close();
  });

  it('rebuilt projection, incremental projection, stateAt(head) and replay-from-zero are identical', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(changeSet, { minLength: 1, maxLength: 25 }), fc.nat(), async (sets, pick) => {
        for (const cs of sets) await f.store.append(cs, who);
        await f.store.flushSnapshots();
        const head = (await f.store.head()).revision;

        const incremental = await f.store.currentState();
        const atHead = await f.store.stateAt(head);
        const replayed = await replayFromZero(f, head);
        expect(fingerprint(incremental)).toBe(fingerprint(replayed));
        expect(fingerprint(atHead)).toBe(fingerprint(replayed));

        await f.store.rebuildProjection();
        expect(fingerprint(await f.store.currentState())).toBe(fingerprint(replayed));

        if (head > 0) {
          const r = 1 + (pick % head);
          expect(fingerprint(await f.store.stateAt(r))).toBe(fingerprint(await replayFromZero(f, r)));
        }
      }),
      { numRuns: 30 },
    );
    expect((await f.store.verify()).ok).toBe(true);
    expect((await f.store.snapshots.list()).length).toBeGreaterThan(3);
  });

  it('rebuilds an emptied projection exactly, and appends continue from it', async () => {
    const before = await f.store.currentState();
    await f.store.pool.query('DELETE FROM resources');
    const rebuilt = await f.store.rebuildProjection();
    expect(rebuilt.revision).toBe(before.revision);
    expect(fingerprint(await f.store.currentState())).toBe(fingerprint(before));
    const next = await f.store.append(
      [{ op: 'put', kind: 'Workload', namespace: 'default', name: 'after-rebuild', spec: { weight: 1 } }],
      who,
    );
    expect(next.status).toBe('appended');
  });

  it('serves stateAt from older snapshots when the newest one is corrupted, and after all are dropped', async () => {
    const head = (await f.store.head()).revision;
    const expected = fingerprint(await replayFromZero(f, head));
    const [latest] = (await f.store.snapshots.list()).slice(-1);
    await f.store.pool.query(
      "UPDATE snapshots SET content = replace(content, 'weight', 'wEight') WHERE revision = $1",
      [latest!.revision],
    );
    expect(fingerprint(await f.store.stateAt(head))).toBe(expected);
    await f.store.snapshots.dropAll();
    expect(fingerprint(await f.store.stateAt(head))).toBe(expected);
    await f.store.createSnapshot();
    expect((await f.store.snapshots.list()).map((s) => s.revision)).toEqual([head]);
  });

  it('answers NotFound for revisions that do not exist', async () => {
    const head = (await f.store.head()).revision;
    await expect(f.store.stateAt(head + 1)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(f.store.stateAt(-1)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await f.store.stateAt(0)).resources.size).toBe(0);
  });
});
