import { canonicalEqual } from './canonical';
import { ConflictError } from './errors';
import type { Change } from './events';
import { importChanges, importHeader, skippedOf } from './federation';
import { ImportPlanChanged, skipMayHaveCleared, splitImport, validateImport } from './federation-rules';
import type { Resource } from './resource';
import { applyChanges, emptyState, type MeshState } from './state';
import { IndexedState } from './state-index';
import { viewOf } from './validate';

const svc = (name: string, vip: string, extra: Record<string, unknown> = {}): Resource => ({
  kind: 'Service',
  namespace: 'default',
  name,
  spec: { vip, ports: [{ port: 80, protocol: 'TCP' }], selector: { app: name }, ...extra },
});
const wl = (name: string, labels: Record<string, string>, address: string): Resource => ({
  kind: 'Workload',
  namespace: 'default',
  name,
  spec: { address, node: 'n1', labels, identity: 'x' },
});
const put = (r: Resource, origin?: string): Change =>
  origin === undefined ? { op: 'put', ...r } : { op: 'put', ...r, origin };
const stateOf = (changes: Change[]): MeshState => applyChanges(emptyState(), changes, 1);
const names = (rs: readonly { name: string }[]) => rs.map((r) => r.name);

// What east exports: web (clashes with west's local legacy), api (fine), their workloads.
const EXPORTED: Resource[] = [
  svc('api', '127.100.0.2'),
  svc('web', '127.100.0.1'),
  wl('api-1', { app: 'api' }, '127.0.1.2'),
  wl('shared-1', { app: 'web' }, '127.0.1.3'),
  wl('web-1', { app: 'web' }, '127.0.1.1'),
];
const LOCAL_LEGACY = put(svc('legacy', '127.100.0.1'));

describe('splitImport', () => {
  it('accepts everything when nothing clashes', () => {
    const split = splitImport(viewOf(emptyState()), 'east', EXPORTED);
    expect(split.skipped).toEqual([]);
    expect(split.accepted).toEqual(EXPORTED);
  });

  it('skips a Service whose VIP a local Service uses, and the Workloads only it selects', () => {
    const split = splitImport(viewOf(stateOf([LOCAL_LEGACY])), 'east', EXPORTED);
    expect(names(split.accepted)).toEqual(['api', 'api-1']);
    expect(split.skipped).toEqual([
      {
        kind: 'Service',
        namespace: 'default',
        name: 'web.east',
        reason: 'vip-conflict',
        vip: '127.100.0.1:80/TCP',
        holder: { kind: 'Service', namespace: 'default', name: 'legacy' },
        message:
          'Service default/web.east skipped: 127.100.0.1:80/TCP is used by local Service default/legacy (only one global service may use a VIP)',
      },
      {
        kind: 'Workload',
        namespace: 'default',
        name: 'shared-1.east',
        reason: 'selected-only-by-skipped',
        holder: { kind: 'Service', namespace: 'default', name: 'web.east', origin: 'east' },
        message: 'Workload default/shared-1.east skipped: selected only by skipped Service default/web.east',
      },
      expect.objectContaining({ name: 'web-1.east', reason: 'selected-only-by-skipped' }),
    ]);
  });

  it('keeps a Workload that an accepted Service of the same origin also selects', () => {
    const exported = [...EXPORTED, svc('all', '127.100.0.3', { selector: { tier: 'x' } })];
    exported[3] = wl('shared-1', { app: 'web', tier: 'x' }, '127.0.1.3');
    const split = splitImport(viewOf(stateOf([LOCAL_LEGACY])), 'east', exported);
    expect(names(split.skipped)).toEqual(['web.east', 'web-1.east']);
    expect(names(split.accepted)).toContain('shared-1');
  });

  it('lets a Service share the VIP of its global service (local or another peer)', () => {
    const state = stateOf([put(svc('web', '127.100.0.1')), put(svc('web.north', '127.100.0.1'), 'north')]);
    expect(splitImport(viewOf(state), 'east', EXPORTED).skipped).toEqual([]);
  });

  it("names another peer's import as the holder of a VIP", () => {
    const state = stateOf([put(svc('cache.north', '127.100.0.2'), 'north')]);
    const [skip] = splitImport(viewOf(state), 'east', EXPORTED).skipped;
    expect(skip).toMatchObject({
      name: 'api.east',
      holder: { kind: 'Service', namespace: 'default', name: 'cache.north', origin: 'north' },
    });
    expect(skip!.message).toContain('is used by Service default/cache.north (imported from north)');
  });

  it('ignores what the same origin imported before (the view replaces it) but not clashes inside the view', () => {
    // east swapped the VIPs of api and web since the last import: no conflict.
    const before = stateOf([
      put(svc('api.east', '127.100.0.1'), 'east'),
      put(svc('web.east', '127.100.0.2'), 'east'),
    ]);
    expect(splitImport(viewOf(before), 'east', EXPORTED).skipped).toEqual([]);
    // Two Services of one view on one VIP: neither can be programmed, both are skipped.
    const bad = [svc('api', '127.100.0.9'), svc('web', '127.100.0.9')];
    expect(names(splitImport(viewOf(emptyState()), 'east', bad).skipped)).toEqual(['api.east', 'web.east']);
  });

  it('gives the same answer through the indexed view the store validates with', () => {
    const state = stateOf([LOCAL_LEGACY, put(svc('other', '127.100.0.7'))]);
    const indexed = new IndexedState(stateOf([LOCAL_LEGACY, put(svc('other', '127.100.0.7'))]));
    expect(splitImport(indexed.view(), 'east', EXPORTED)).toEqual(
      splitImport(viewOf(state), 'east', EXPORTED),
    );
  });

  it('makes an import that validateImport accepts, and deletes a skipped resource imported before', () => {
    // web.east was imported on another VIP; east then moved it onto the VIP of west's legacy.
    const moved = EXPORTED.map((r) => (r.name === 'web' ? svc('web', '127.100.0.50') : r));
    const current = stateOf([...importChanges(emptyState(), 'east', moved).apply, LOCAL_LEGACY]);
    const view = viewOf(current);
    const all = importChanges(current, 'east', EXPORTED);
    expect(() => validateImport(view, [...all.apply, ...all.delete], 'east')).toThrow(/both use 127.100.0.1/);

    const split = splitImport(view, 'east', EXPORTED);
    const ic = importChanges(current, 'east', split.accepted);
    expect(ic.apply).toEqual([]);
    expect(names(ic.delete)).toEqual(['web.east', 'shared-1.east', 'web-1.east']);
    expect(() => validateImport(view, [...ic.apply, ...ic.delete], 'east')).not.toThrow();
  });

  it('still refuses a write to a resource another cluster owns: that is not a skip', () => {
    const state = stateOf([put(svc('api.east', '127.100.0.2'), 'north')]);
    const split = splitImport(viewOf(state), 'east', EXPORTED);
    const ic = importChanges(emptyState(), 'east', split.accepted);
    expect(() => validateImport(viewOf(state), [...ic.apply, ...ic.delete], 'east')).toThrow(ConflictError);
  });
});

describe('skipped imports in the log and the link', () => {
  const [skip] = splitImport(viewOf(stateOf([LOCAL_LEGACY])), 'east', EXPORTED).skipped;

  it('names what was skipped in the reason and lists it in the hashed metadata', () => {
    const h = importHeader('east', 42, 7, { skipped: [skip!] });
    expect(h.reason).toBe(
      'import from east revision 42 (export seq 7); skipped 1 of the exported resources: ' +
        'Service default/web.east skipped: 127.100.0.1:80/TCP is used by local Service default/legacy (only one global service may use a VIP)',
    );
    expect(h.metadata.federation).toEqual({ origin: 'east', revision: 42, seq: 7, skipped: [skip] });
    expect(skippedOf(h.metadata)).toEqual([skip]);
    // Without skips the metadata keeps its old shape.
    expect(importHeader('east', 42, 7).metadata.federation).toEqual({ origin: 'east', revision: 42, seq: 7 });
    expect(importHeader('east', 42, 7, { again: 'reapply' }).reason).toBe(
      'import from east revision 42 (export seq 7), re-applied after a local change',
    );
    const many = importHeader('east', 1, 1, { skipped: [skip!, skip!, skip!, skip!, skip!] }).reason;
    expect(many).toMatch(/skipped 5 of the exported resources: .*; and 2 more$/);
    expect(skippedOf({ federation: { origin: 'east', skipped: [{ kind: 1 }] } })).toEqual([]);
    expect(skippedOf({})).toEqual([]);
  });

  it('may have cleared only when the holder is gone, moved off the VIP or joined the global service', () => {
    const legacy = stateOf([LOCAL_LEGACY]).resources.get('Service/default/legacy');
    expect(skipMayHaveCleared(skip!, legacy)).toBe(false);
    expect(skipMayHaveCleared(skip!, undefined)).toBe(true);
    expect(skipMayHaveCleared(skip!, { ...legacy!, spec: { ...legacy!.spec, vip: '127.100.0.99' } })).toBe(
      true,
    );
    // A Workload's skip follows its Service; a clash inside one view needs a new view.
    const split = splitImport(viewOf(stateOf([LOCAL_LEGACY])), 'east', EXPORTED);
    expect(skipMayHaveCleared(split.skipped[1]!, undefined)).toBe(false);
    const inside = splitImport(viewOf(emptyState()), 'east', [
      svc('a', '127.100.0.9'),
      svc('b', '127.100.0.9'),
    ]);
    expect(skipMayHaveCleared(inside.skipped[0]!, undefined)).toBe(false);
  });

  it('carries the plan decided under the lock in a typed conflict', () => {
    const e = new ImportPlanChanged('east', [skip!], 9);
    expect(e).toBeInstanceOf(ConflictError);
    expect(e.headRevision).toBe(9);
    expect(canonicalEqual(e.skipped, [skip])).toBe(true);
    expect(e.details).toEqual([{ path: 'Service/default/web.east', message: skip!.message }]);
  });
});
