import { ConflictError, ValidationError } from './errors';
import type { Change } from './events';
import {
  exportedView,
  federationActor,
  globalKeyOf,
  importChangeList,
  importChanges,
  importedName,
  importedRef,
  importHeader,
  isEmptyImport,
  lastImport,
  peerOfActor,
  sourceName,
  withdrawChanges,
} from './federation';
import { validateImport } from './federation-rules';
import type { Resource } from './resource';
import { applyChanges, emptyState, type MeshState } from './state';
import { IndexedState } from './state-index';
import { validateChangeSet, viewOf } from './validate';

const svc = (name: string, vip: string, extra: Record<string, unknown> = {}): Resource => ({
  kind: 'Service',
  namespace: 'default',
  name,
  spec: { vip, ports: [{ port: 80, protocol: 'TCP' }], selector: { app: name }, ...extra },
});
const wl = (name: string, app: string, address: string): Resource => ({
  kind: 'Workload',
  namespace: 'default',
  name,
  spec: { address, node: 'n1', labels: { app }, identity: app },
});
const put = (r: Resource, origin?: string): Change =>
  origin === undefined ? { op: 'put', ...r } : { op: 'put', ...r, origin };
const stateOf = (changes: Change[]): MeshState => applyChanges(emptyState(), changes, 1);

describe('names', () => {
  it('imports a name as <name>.<origin> and gives the source name back', () => {
    expect(importedName('reviews', 'east')).toBe('reviews.east');
    expect(importedRef({ kind: 'Service', namespace: 'ns', name: 'reviews' }, 'east')).toEqual({
      kind: 'Service',
      namespace: 'ns',
      name: 'reviews.east',
    });
    expect(sourceName({ name: 'reviews.east' })).toBe('reviews');
    expect(sourceName({ name: 'reviews' })).toBe('reviews');
    expect(globalKeyOf({ namespace: 'ns', name: 'reviews.east' })).toBe(
      globalKeyOf({ namespace: 'ns', name: 'reviews' }),
    );
  });

  it('names the peer of an import actor only', () => {
    expect(federationActor('east')).toBe('federation:east');
    expect(peerOfActor('federation:east')).toBe('east');
    expect(peerOfActor('alice')).toBeUndefined();
  });

  it('puts the peer revision and sequence in the reason and the metadata', () => {
    const h = importHeader('east', 42, 7);
    expect(h).toEqual({
      actor: 'federation:east',
      reason: 'import from east revision 42 (export seq 7)',
      metadata: { federation: { origin: 'east', revision: 42, seq: 7 } },
    });
    expect(lastImport(h.metadata)).toEqual({ origin: 'east', revision: 42, seq: 7 });
    expect(lastImport({})).toBeUndefined();
  });
});

describe('exportedView', () => {
  it('exports exported Services and the local Workloads they select, sorted, never imports', () => {
    const state = stateOf([
      put(svc('reviews', '127.100.0.1', { export: true })),
      put(svc('ratings', '127.100.0.2')),
      put(wl('reviews-1', 'reviews', '127.0.1.1')),
      put(wl('ratings-1', 'ratings', '127.0.1.2')),
      put({ ...svc('details.west', '127.100.0.3', { export: true }) }, 'west'),
      put({ ...wl('details-1.west', 'details', '127.0.1.3') }, 'west'),
    ]);
    expect(exportedView(state, 'east').map((r) => `${r.kind}/${r.name}`)).toEqual([
      'Service/reviews',
      'Workload/reviews-1',
    ]);
    expect(exportedView(state, 'east')[0]).not.toHaveProperty('version');
  });

  it('matches the whole selector, in the Service namespace only', () => {
    const state = stateOf([
      put(svc('web', '127.100.0.1', { export: true, selector: { app: 'web', tier: 'front' } })),
      put({
        ...wl('web-1', 'web', '127.0.1.1'),
        spec: { ...wl('x', 'web', '127.0.1.1').spec, labels: { app: 'web', tier: 'front' } },
      }),
      put(wl('web-2', 'web', '127.0.1.2')),
      put({ ...wl('web-3', 'web', '127.0.1.3'), namespace: 'shop' }),
    ]);
    expect(exportedView(state).map((r) => `${r.kind}/${r.namespace}/${r.name}`)).toEqual([
      'Service/default/web',
      'Workload/default/web-1',
    ]);
  });
});

describe('importChanges', () => {
  const exported = [svc('reviews', '127.100.0.1', { export: true }), wl('reviews-1', 'reviews', '127.0.1.1')];

  it('puts every exported resource under its imported name with the origin', () => {
    const ic = importChanges(emptyState(), 'east', exported);
    expect(ic.delete).toEqual([]);
    expect(ic.apply).toEqual([
      {
        op: 'put',
        kind: 'Service',
        namespace: 'default',
        name: 'reviews.east',
        spec: exported[0]!.spec,
        origin: 'east',
      },
      {
        op: 'put',
        kind: 'Workload',
        namespace: 'default',
        name: 'reviews-1.east',
        spec: exported[1]!.spec,
        origin: 'east',
      },
    ]);
  });

  it('is empty when nothing changed, and deletes what the peer no longer exports', () => {
    const state = applyChanges(
      emptyState(),
      importChangeList(importChanges(emptyState(), 'east', exported)),
      1,
    );
    expect(isEmptyImport(importChanges(state, 'east', exported))).toBe(true);
    const next = importChanges(state, 'east', [exported[0]!]);
    expect(next.apply).toEqual([]);
    expect(next.delete).toEqual([
      { op: 'delete', kind: 'Workload', namespace: 'default', name: 'reviews-1.east' },
    ]);
  });

  it('leaves local resources and other peers alone; withdraw deletes only that peer', () => {
    const state = applyChanges(
      stateOf([put(wl('reviews-1', 'reviews', '127.0.2.1')), put(wl('x.west', 'x', '127.0.3.1'), 'west')]),
      importChangeList(importChanges(emptyState(), 'east', exported)),
      2,
    );
    const w = withdrawChanges(state, 'east');
    expect(w.apply).toEqual([]);
    expect(w.delete.map((c) => c.name)).toEqual(['reviews.east', 'reviews-1.east']);
  });

  it('refuses a malformed view with the field path', () => {
    const bad = [{ ...svc('a.b', '127.100.0.1') }, { ...svc('r', '127.100.0.2'), kind: 'Route' }];
    try {
      importChanges(emptyState(), 'east', bad);
      throw new Error('expected a ValidationError');
    } catch (e) {
      expect(e).toBeInstanceOf(ValidationError);
      expect((e as ValidationError).details.map((d) => d.path)).toEqual([
        'exported[0].name',
        'exported[1].kind',
      ]);
    }
  });
});

describe('who may write what', () => {
  const imported = importChangeList(
    importChanges(emptyState(), 'east', [
      svc('reviews', '127.100.0.1', { export: true }),
      wl('r1', 'reviews', '127.0.1.1'),
    ]),
  );
  const state = applyChanges(emptyState(), imported, 3);

  it('refuses local writes to imported resources and dotted names with a 409 naming the owner', () => {
    const cases: Change[] = [
      put({ ...svc('reviews.east', '127.100.0.9') }),
      { op: 'delete', kind: 'Workload', namespace: 'default', name: 'r1.east' },
      put({ ...svc('reviews.west', '127.100.0.9') }),
      put(svc('plain', '127.100.0.9'), 'east'),
    ];
    for (const c of cases) {
      try {
        validateChangeSet(new IndexedState(state).view(), [c]);
        throw new Error('expected a ConflictError');
      } catch (e) {
        expect(e).toBeInstanceOf(ConflictError);
        const err = e as ConflictError;
        expect(err.headRevision).toBe(3);
        expect(err.details[0]!.path).toBe('changes[0].name');
        expect(err.message).toMatch(/owned by cluster (east|west)/);
      }
    }
  });

  it('lets a local Service share the VIP of its global service but no other', () => {
    expect(() => validateChangeSet(viewOf(state), [put(svc('reviews', '127.100.0.1'))])).not.toThrow();
    expect(() => validateChangeSet(viewOf(state), [put(svc('ratings', '127.100.0.1'))])).toThrow(
      /Service default\/ratings and Service default\/reviews.east both use 127.100.0.1:80\/TCP/,
    );
  });

  it('resolves Route and AuthorizationPolicy references to local Services only', () => {
    const routeTo = (service: string): Change => ({
      op: 'put',
      kind: 'Route',
      namespace: 'default',
      name: 'r',
      spec: { service, backends: [{ selector: { app: 'reviews' }, weight: 1 }] },
    });
    expect(() => validateChangeSet(viewOf(state), [routeTo('reviews')])).toThrow(
      /Service default\/reviews does not exist/,
    );
    expect(() => validateChangeSet(viewOf(state), [routeTo('reviews.east')])).toThrow(ValidationError);
    const withLocal = applyChanges(state, [put(svc('reviews', '127.100.0.1'))], 4);
    expect(() => validateChangeSet(viewOf(withLocal), [routeTo('reviews')])).not.toThrow();
  });

  it('accepts an import only of <name>.<origin> with that origin', () => {
    expect(() => validateImport(viewOf(emptyState()), imported, 'east')).not.toThrow();
    expect(() => validateImport(viewOf(emptyState()), imported, 'west')).toThrow(ConflictError);
    const local = stateOf([put(svc('reviews', '127.100.0.1'))]);
    expect(() =>
      validateImport(
        viewOf(local),
        [{ op: 'delete', kind: 'Service', namespace: 'default', name: 'reviews' }],
        'east',
      ),
    ).toThrow(/not an import from east \(owner: local\)/);
  });

  it('checks imported specs and VIP collisions outside the global service', () => {
    const local = stateOf([put(svc('ratings', '127.100.0.1'))]);
    expect(() => validateImport(new IndexedState(local).view(), imported, 'east')).toThrow(
      /Service default\/reviews.east and Service default\/ratings both use/,
    );
    const bad: Change = { ...(imported[0] as Change & { op: 'put' }), spec: { vip: 'x' } };
    try {
      validateImport(viewOf(emptyState()), [bad], 'east');
      throw new Error('expected a ValidationError');
    } catch (e) {
      expect(e).toBeInstanceOf(ValidationError);
      expect((e as ValidationError).details.map((d) => d.path)).toContain('changes[0].spec.vip');
    }
  });
});
