import { changesToReach, diffStates, isEmptyDiff } from './diff';
import type { Change, CommittedEvent } from './events';
import { applyChanges, emptyState, evolve, getResource, listResources, type MeshState } from './state';

type Put = Extract<Change, { op: 'put' }>;

const svc = (name: string, vip: string, extra: Record<string, unknown> = {}): Put => ({
  op: 'put',
  kind: 'Service',
  namespace: 'default',
  name,
  spec: { vip, ports: [{ port: 80, protocol: 'TCP' }], selector: { app: name }, ...extra },
});
const route = (name: string, service: string): Put => ({
  op: 'put',
  kind: 'Route',
  namespace: 'default',
  name,
  spec: { service, backends: [{ selector: { app: service }, weight: 1 }] },
});
const wl = (name: string, address: string): Put => ({
  op: 'put',
  kind: 'Workload',
  namespace: 'default',
  name,
  spec: { address, node: 'node-a', labels: { app: 'reviews' }, identity: 'reviews' },
});

const put = (c: Put, revision: number, seq = 0): CommittedEvent => ({
  ...c,
  prevVersion: null,
  revision,
  seq,
});
const ops = (cs: Change[]) => cs.map((c) => `${c.op} ${c.kind}/${c.name}`);

describe('evolve', () => {
  it('puts and deletes without mutating its input', () => {
    const s0 = emptyState();
    const s1 = evolve(s0, put(svc('a', '127.100.0.1'), 1));
    const s2 = evolve(s1, {
      op: 'delete',
      kind: 'Service',
      namespace: 'default',
      name: 'a',
      prevVersion: 1,
      revision: 2,
      seq: 0,
    });
    expect(s0.resources.size).toBe(0);
    expect(getResource(s1, { kind: 'Service', namespace: 'default', name: 'a' })).toMatchObject({
      version: 1,
    });
    expect(s1.revision).toBe(1);
    expect(s2.resources.size).toBe(0);
    expect(s2.revision).toBe(2);
  });

  it('records origin and the version of the last put', () => {
    const s = evolve(evolve(emptyState(), put(svc('a', '127.100.0.1'), 1)), {
      ...put(svc('a', '127.100.0.2'), 4),
      origin: 'east',
    });
    expect(listResources(s)).toEqual([
      expect.objectContaining({
        name: 'a',
        version: 4,
        origin: 'east',
        spec: expect.objectContaining({ vip: '127.100.0.2' }),
      }),
    ]);
  });
});

describe('applyChanges', () => {
  it('commits every change at one revision', () => {
    const s = applyChanges(emptyState(), [svc('a', '127.100.0.1'), wl('w', '127.0.1.1')], 9);
    expect(s.revision).toBe(9);
    expect(listResources(s).map((r) => [r.name, r.version])).toEqual([
      ['a', 9],
      ['w', 9],
    ]);
  });
});

describe('diffStates', () => {
  const a = applyChanges(
    emptyState(),
    [svc('a', '127.100.0.1'), svc('b', '127.100.0.2'), wl('w', '127.0.1.1')],
    1,
  );

  it('is empty for the same state and for a replayed copy with other versions', () => {
    expect(isEmptyDiff(diffStates(a, a))).toBe(true);
    const replayed = applyChanges(
      emptyState(),
      [wl('w', '127.0.1.1'), svc('b', '127.100.0.2'), svc('a', '127.100.0.1')],
      5,
    );
    expect(isEmptyDiff(diffStates(a, replayed))).toBe(true);
  });

  it('ignores key order inside specs', () => {
    const reordered = applyChanges(
      a,
      [
        {
          ...svc('a', '127.100.0.1'),
          spec: { selector: { app: 'a' }, ports: [{ protocol: 'TCP', port: 80 }], vip: '127.100.0.1' },
        },
      ],
      2,
    );
    expect(isEmptyDiff(diffStates(a, reordered))).toBe(true);
  });

  it('lists added, removed and changed, sorted by key', () => {
    const b = applyChanges(
      a,
      [
        svc('z', '127.100.0.9'),
        svc('c', '127.100.0.3'),
        { op: 'delete', kind: 'Service', namespace: 'default', name: 'b' },
        wl('w', '127.0.1.2'),
      ],
      2,
    );
    const d = diffStates(a, b);
    expect(d.added.map((r) => r.name)).toEqual(['c', 'z']);
    expect(d.removed).toEqual([
      { kind: 'Service', namespace: 'default', name: 'b', spec: svc('b', '127.100.0.2').spec },
    ]);
    expect(d.changed).toEqual([
      {
        kind: 'Workload',
        namespace: 'default',
        name: 'w',
        before: wl('w', '127.0.1.1').spec,
        after: wl('w', '127.0.1.2').spec,
      },
    ]);
    expect(isEmptyDiff(d)).toBe(false);
  });

  it('counts an origin change as changed', () => {
    const b = applyChanges(a, [{ ...svc('a', '127.100.0.1'), origin: 'east' }], 2);
    expect(diffStates(a, b).changed).toEqual([expect.objectContaining({ name: 'a', afterOrigin: 'east' })]);
    expect(diffStates(b, a).changed[0]).toMatchObject({ beforeOrigin: 'east' });
    expect(diffStates(b, a).changed[0]).not.toHaveProperty('afterOrigin');
  });
});

describe('changesToReach', () => {
  const apply = (s: MeshState, cs: Change[]) => applyChanges(s, cs, s.revision + 1);

  it('is empty between equal states', () => {
    const s = apply(emptyState(), [svc('a', '127.100.0.1')]);
    expect(changesToReach(s, s)).toEqual([]);
  });

  it('puts Services before Routes and deletes Routes before Services', () => {
    const from = apply(emptyState(), [
      svc('old', '127.100.0.1'),
      route('r-old', 'old'),
      wl('w', '127.0.1.1'),
    ]);
    const to = apply(emptyState(), [svc('new', '127.100.0.2'), route('r-new', 'new'), wl('w', '127.0.1.1')]);
    expect(ops(changesToReach(from, to))).toEqual([
      'delete Route/r-old',
      'delete Service/old',
      'put Service/new',
      'put Route/r-new',
    ]);
  });

  it('deletes a Service only after its surviving Route is re-pointed', () => {
    const from = apply(emptyState(), [svc('old', '127.100.0.1'), route('r', 'old')]);
    const to = apply(emptyState(), [svc('new', '127.100.0.1'), route('r', 'new')]);
    expect(ops(changesToReach(from, to))).toEqual(['put Service/new', 'put Route/r', 'delete Service/old']);
  });

  it('preserves origin on puts and restores a removed one', () => {
    const from = apply(emptyState(), [svc('a', '127.100.0.1')]);
    const to = apply(emptyState(), [
      { ...svc('a', '127.100.0.1'), origin: 'east' },
      { ...wl('w', '127.0.1.1'), origin: 'west' },
    ]);
    expect(changesToReach(from, to)).toEqual([
      { ...svc('a', '127.100.0.1'), origin: 'east' },
      { ...wl('w', '127.0.1.1'), origin: 'west' },
    ]);
    // Unreferenced deletes go first (frees VIPs before puts may need them).
    expect(changesToReach(to, from)).toEqual([
      { op: 'delete', kind: 'Workload', namespace: 'default', name: 'w' },
      svc('a', '127.100.0.1'),
    ]);
  });

  it('reaches the target state when applied', () => {
    const from = apply(emptyState(), [svc('a', '127.100.0.1'), route('ra', 'a'), wl('w1', '127.0.1.1')]);
    const to = apply(emptyState(), [
      svc('a', '127.100.0.1', { export: true }),
      svc('b', '127.100.0.2'),
      route('ra', 'b'),
    ]);
    expect(isEmptyDiff(diffStates(apply(from, changesToReach(from, to)), to))).toBe(true);
  });
});
