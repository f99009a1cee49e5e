import type { Change } from '@meshplane/domain';
import fc from 'fast-check';
import { type MapBackend, readMaps } from './backend';
import { compile } from './compile';
import { IdAllocator } from './ids';
import { cloneMapSet, describeMapSet, diffMapSets, emptyMapSet, halfAppliedServices } from './maps';
import { MemoryMapBackend } from './memory-backend';
import { describeOps, executeOp, planOps, planTouched } from './plan';
import { applyChecked, changesOf, NODES, stateArb } from './test-arbitraries';
import { policy, remove, service, stateOf, workload } from './test-fixtures';

const base: Change[] = [
  service('web', '127.100.0.1'),
  workload('web-1', '127.0.1.1', 'n1'),
  workload('web-2', '127.0.1.2', 'n2'),
  workload('client-1', '127.0.1.9', 'n1', { labels: { app: 'client' }, identity: 'client' }),
  policy('allow', 'web', 'ALLOW', ['client']),
];

describe('planOps', () => {
  it('orders upserts backends -> slots -> policy -> identities -> services', () => {
    const ops = planOps(compile(stateOf(base), 'n1'), emptyMapSet());
    expect(describeOps(ops)).toBe(
      'update mesh_id_names x2, update mesh_backends x2, update mesh_slots x2, update mesh_policy x1, ' +
        'update mesh_identities x2, update mesh_services x1',
    );
  });

  it('deletes in reverse: service entry, then slots, identities, policy, backends, id names', () => {
    const a = compile(stateOf(base), 'n1');
    const ops = planOps(emptyMapSet(), a.maps);
    expect(ops.map((o) => `${o.action} ${o.map}`)).toEqual([
      'delete mesh_services',
      'delete mesh_slots',
      'delete mesh_identities',
      'delete mesh_policy',
      'delete mesh_backends',
      'delete mesh_id_names',
    ]);
  });

  it('the same desired state twice plans zero ops', () => {
    const a = compile(stateOf(base), 'n1');
    expect(planOps(a, cloneMapSet(a.maps))).toEqual([]);
  });

  it('a weight change writes a new table beside the old one, flips the service, then drops the old table', () => {
    const a = compile(stateOf(base), 'n1');
    const b = compile(stateOf([workload('web-2', '127.0.1.2', 'n2', { weight: 3 })], stateOf(base)), 'n1', {
      ids: IdAllocator.fromMaps(a.maps),
    });
    expect(describeOps(planOps(b, a.maps))).toBe(
      'update mesh_slots x4, update mesh_services x1, delete mesh_slots x2',
    );
  });

  it('planTouched: upserts the touched keys the desired maps hold, deletes the others, in the same order', () => {
    const a = compile(stateOf(base), 'n1');
    const b = compile(stateOf([workload('web-2', '127.0.1.2', 'n2', { weight: 3 })], stateOf(base)), 'n1', {
      ids: IdAllocator.fromMaps(a.maps),
    });
    const touched = Object.fromEntries(
      (['mesh_slots', 'mesh_services'] as const).map((m) => [
        m,
        new Set(
          [...a.maps[m].keys(), ...b.maps[m].keys()].filter((k) => a.maps[m].get(k) !== b.maps[m].get(k)),
        ),
      ]),
    );
    const ops = planTouched(b, touched);
    expect(describeOps(ops)).toBe(describeOps(planOps(b, a.maps)));
    const maps = cloneMapSet(a.maps);
    applyChecked(maps, ops);
    expect(diffMapSets(maps, b.maps)).toEqual([]);
    // Nothing touched, nothing planned; batches split as planOps splits them.
    expect(planTouched(b, {})).toEqual([]);
    expect(
      planTouched(b, { mesh_slots: [...b.maps.mesh_slots.keys()] }, 3).map((o) => o.keys.length),
    ).toEqual([3, 1]);
  });

  it('splits big diffs into batches of batchSize', () => {
    const many = Array.from({ length: 5 }, (_, i) => workload(`web-${i + 3}`, `127.0.1.${i + 3}`, 'n2'));
    const ops = planOps(compile(stateOf([...base, ...many]), 'n1'), emptyMapSet(), { batchSize: 3 });
    expect(ops.filter((o) => o.map === 'mesh_backends').map((o) => o.keys.length)).toEqual([3, 3, 1]);
  });

  it('applied through a MemoryMapBackend, the maps equal the desired bytes', async () => {
    const b = await MemoryMapBackend.open();
    const a = compile(stateOf(base), 'n1');
    for (const op of planOps(a, emptyMapSet())) await executeOp(b, op);
    expect(diffMapSets(await readMaps(b), a.maps)).toEqual([]);
  });

  it('a backend without the byte-string paths gets the same batches as bytes, deletes included', async () => {
    const inner = await MemoryMapBackend.open();
    const calls: string[] = [];
    const bytesOnly: MapBackend = {
      kind: 'bytes-only',
      lookup: (m, k) => inner.lookup(m, k),
      iterate: (m) => inner.iterate(m),
      update: (m, es) => {
        calls.push(`update ${m} ${es.length}`);
        return inner.update(m, es);
      },
      delete: (m, ks) => {
        calls.push(`delete ${m} ${ks.length}`);
        return inner.delete(m, ks);
      },
      readMeta: () => inner.readMeta(),
      writeMeta: (meta) => inner.writeMeta(meta),
      close: () => inner.close(),
    };
    const a = compile(stateOf(base), 'n1');
    for (const op of planOps(a, emptyMapSet())) await executeOp(bytesOnly, op);
    expect(diffMapSets(await readMaps(bytesOnly), a.maps)).toEqual([]);
    const b = compile(stateOf([...base, remove('Workload', 'web-1')]), 'n1', {
      ids: IdAllocator.fromMaps(a.maps),
    });
    for (const op of planOps(b, await readMaps(inner))) await executeOp(bytesOnly, op);
    expect(diffMapSets(await readMaps(inner), b.maps)).toEqual([]);
    expect(calls.some((c) => c.startsWith('delete mesh_'))).toBe(true);
    expect(calls.every((c) => c.startsWith('update') || c.startsWith('delete'))).toBe(true);
  });
});

describe('planOps properties', () => {
  it('plan(A -> B) on maps holding A gives exactly B; again gives zero ops; no half-applied service at any boundary', () => {
    fc.assert(
      fc.property(
        stateArb,
        stateArb,
        fc.constantFrom(...NODES),
        fc.integer({ min: 1, max: 4 }),
        (sa, sb, node, batchSize) => {
          const a = compile(stateOf(changesOf(sa)), node);
          const maps = emptyMapSet();
          applyChecked(maps, planOps(a, maps, { batchSize }));
          expect(diffMapSets(maps, a.maps)).toEqual([]);

          const b = compile(stateOf(changesOf(sb)), node, { ids: IdAllocator.fromMaps(maps) });
          applyChecked(maps, planOps(b, maps, { batchSize }));
          expect(diffMapSets(maps, b.maps)).toEqual([]);
          expect(planOps(b, maps)).toEqual([]);

          // Unchanged frontends and backends kept their ids.
          for (const [key, id] of b.ids.services)
            if (a.ids.services.has(key)) expect(a.ids.services.get(key)).toBe(id);
          for (const [key, id] of b.ids.backends)
            if (a.ids.backends.has(key)) expect(a.ids.backends.get(key)).toBe(id);

          // Back to A from B's maps: B -> A is as safe, and ends in A's logical content.
          const back = compile(stateOf(changesOf(sa)), node, { ids: IdAllocator.fromMaps(maps) });
          applyChecked(maps, planOps(back, maps, { batchSize }));
          expect(describeMapSet(maps).mesh_services.length).toBe(describeMapSet(a.maps).mesh_services.length);
        },
      ),
      { numRuns: 80 },
    );
  });

  it('a removal after a half-applied plan converges (the next plan finishes the job)', () => {
    fc.assert(
      fc.property(stateArb, stateArb, fc.nat(), (sa, sb, cut) => {
        const a = compile(stateOf(changesOf(sa)), 'n1');
        const maps = emptyMapSet();
        applyChecked(maps, planOps(a, maps));
        const b = compile(stateOf(changesOf(sb)), 'n1', { ids: IdAllocator.fromMaps(maps) });
        const ops = planOps(b, maps, { batchSize: 2 });
        applyChecked(maps, ops.slice(0, ops.length ? cut % ops.length : 0));
        // The agent crashed: a new one re-reads ids from the maps and plans again.
        const again = compile(stateOf(changesOf(sb)), 'n1', { ids: IdAllocator.fromMaps(maps) });
        applyChecked(maps, planOps(again, maps));
        expect(diffMapSets(maps, again.maps)).toEqual([]);
        expect(halfAppliedServices(maps)).toEqual([]);
      }),
      { numRuns: 60 },
    );
  });

  it('removing everything leaves empty maps', () => {
    const a = compile(stateOf(base), 'n1');
    const gone = compile(
      stateOf(
        base.map((c) => remove(c.kind, c.name)),
        stateOf(base),
      ),
      'n1',
      { ids: IdAllocator.fromMaps(a.maps) },
    );
    const maps = cloneMapSet(a.maps);
    applyChecked(maps, planOps(gone, maps));
    expect(diffMapSets(maps, emptyMapSet())).toEqual([]);
  });
});
