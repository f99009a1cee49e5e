import { ValidationError } from './errors';
import type { Change } from './events';
import type { ResourceRef, StoredResource } from './resource';
import { applyChanges, emptyState, type MeshState } from './state';
import { overlay, type StateView, validateChangeSet, viewOf } from './validate';

type Put = Extract<Change, { op: 'put' }>;

const svc = (name: string, vip = '127.100.0.1', port = 80, protocol = 'TCP', namespace = 'default'): Put => ({
  op: 'put',
  kind: 'Service',
  namespace,
  name,
  spec: { vip, ports: [{ port, protocol }], selector: { app: name } },
});
const route = (name: string, service: string, namespace = 'default'): Put => ({
  op: 'put',
  kind: 'Route',
  namespace,
  name,
  spec: { service, backends: [{ selector: { app: service }, weight: 100 }] },
});
const policy = (name: string, service: string): Put => ({
  op: 'put',
  kind: 'AuthorizationPolicy',
  namespace: 'default',
  name,
  spec: { service, action: 'ALLOW', from: [{ identity: 'productpage' }] },
});
const del = (kind: string, name: string, namespace = 'default'): Change => ({
  op: 'delete',
  kind,
  namespace,
  name,
});

const stateOf = (...changes: Change[]): MeshState => applyChanges(emptyState(), changes, 1);

function detailsOf(current: StateView, changes: Change[], pathOf?: (i: number) => string) {
  try {
    validateChangeSet(current, changes, pathOf);
  } catch (e) {
    expect(e).toBeInstanceOf(ValidationError);
    return (e as ValidationError).details;
  }
  return [];
}

describe('viewOf / overlay', () => {
  const base = stateOf(svc('a'), svc('b', '127.100.0.2'), route('ra', 'a'));

  it('viewOf reads and lists by kind', () => {
    const v = viewOf(base);
    expect(v.get({ kind: 'Service', namespace: 'default', name: 'a' })?.version).toBe(1);
    expect([...v.list('Service')].map((r) => r.name).sort()).toEqual(['a', 'b']);
    expect([...v.list()]).toHaveLength(3);
  });

  it('overlay applies puts and hides deletes without touching the base', () => {
    const v = overlay(
      viewOf(base),
      [del('Service', 'a'), svc('c', '127.100.0.3'), svc('b', '127.100.0.9')],
      7,
    );
    expect(v.get({ kind: 'Service', namespace: 'default', name: 'a' })).toBeUndefined();
    expect(v.get({ kind: 'Service', namespace: 'default', name: 'b' })?.spec.vip).toBe('127.100.0.9');
    expect(v.get({ kind: 'Service', namespace: 'default', name: 'c' })?.version).toBe(7);
    expect([...v.list('Service')].map((r) => r.name).sort()).toEqual(['b', 'c']);
    expect([...v.list('Route')].map((r) => r.name)).toEqual(['ra']);
    expect(base.resources.size).toBe(3);
  });

  it('later changes to the same key win, and origin is kept', () => {
    const v = overlay(viewOf(emptyState()), [
      svc('a'),
      del('Service', 'a'),
      { ...svc('a', '127.100.0.5'), origin: 'east' },
    ]);
    const got = [...v.list()];
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ origin: 'east', spec: { vip: '127.100.0.5' } });
  });

  it('never enumerates the base for get, and lists 10k resources quickly', () => {
    const big = new Map<string, StoredResource>();
    for (let i = 0; i < 10000; i++) {
      const r = { ...svc(`s${i}`, `127.100.${i >> 8}.${i & 255}`), version: 1 };
      big.set(`Service/default/s${i}`, r);
    }
    let listed = 0;
    const counting: StateView = {
      get: (ref: ResourceRef) => big.get(`${ref.kind}/${ref.namespace}/${ref.name}`),
      *list(kind?: string) {
        for (const r of big.values()) {
          listed++;
          if (!kind || r.kind === kind) yield r;
        }
      },
    };
    const v = overlay(counting, [del('Service', 's1')]);
    expect(v.get({ kind: 'Service', namespace: 'default', name: 's2' })).toBeDefined();
    expect(listed).toBe(0);
    expect([...v.list('Service')]).toHaveLength(9999);
  });
});

describe('validateChangeSet', () => {
  const base = viewOf(
    stateOf(svc('reviews'), svc('ratings', '127.100.0.2'), route('reviews-split', 'reviews')),
  );

  it('accepts a consistent change set', () => {
    expect(() =>
      validateChangeSet(base, [
        svc('details', '127.100.0.3'),
        route('details-r', 'details'),
        policy('p', 'ratings'),
      ]),
    ).not.toThrow();
  });

  it('accepts deleting a Service together with everything that names it', () => {
    expect(() =>
      validateChangeSet(base, [del('Service', 'reviews'), del('Route', 'reviews-split')]),
    ).not.toThrow();
  });

  it('accepts re-pointing the last referrer while deleting the old Service', () => {
    expect(() =>
      validateChangeSet(base, [route('reviews-split', 'ratings'), del('Service', 'reviews')]),
    ).not.toThrow();
  });

  it('accepts re-putting a Service with its own VIP', () => {
    expect(() =>
      validateChangeSet(base, [{ ...svc('reviews'), spec: { ...svc('reviews').spec, export: true } }]),
    ).not.toThrow();
  });

  it('rejects the same resource twice', () => {
    expect(detailsOf(base, [svc('x', '127.100.0.7'), del('Service', 'x')])).toEqual([
      { path: 'changes[1]', message: 'Service default/x appears more than once (also changes[0])' },
    ]);
  });

  it('rejects a Route or policy naming a missing Service, at spec.service', () => {
    expect(detailsOf(base, [route('r', 'nope'), policy('p', 'ghost')], (i) => `apply[${i}]`)).toEqual([
      {
        path: 'apply[0].spec.service',
        message: 'Service default/nope does not exist (referenced by Route default/r)',
      },
      {
        path: 'apply[1].spec.service',
        message: 'Service default/ghost does not exist (referenced by AuthorizationPolicy default/p)',
      },
    ]);
  });

  it('resolves the Service in the same namespace only', () => {
    expect(detailsOf(base, [route('r', 'reviews', 'other')])[0]?.message).toContain(
      'Service other/reviews does not exist',
    );
  });

  it('accepts a Route whose Service arrives in the same change set', () => {
    expect(() => validateChangeSet(base, [route('r', 'new'), svc('new', '127.100.0.4')])).not.toThrow();
  });

  it('rejects a Route to a Service deleted in the same change set', () => {
    const details = detailsOf(base, [route('r', 'ratings'), del('Service', 'ratings')]);
    expect(details).toContainEqual({
      path: 'changes[0].spec.service',
      message: 'Service default/ratings does not exist (referenced by Route default/r)',
    });
    expect(details).toContainEqual({
      path: 'changes[1]',
      message: 'Service default/ratings is still referenced by Route default/r',
    });
  });

  it('rejects deleting a Service that a remaining Route or policy names, naming both', () => {
    const withPolicy = viewOf(
      stateOf(svc('reviews'), route('reviews-split', 'reviews'), policy('reviews-allow', 'reviews')),
    );
    expect(detailsOf(withPolicy, [del('Service', 'reviews')], (i) => `delete[${i}]`)).toEqual([
      {
        path: 'delete[0]',
        message: 'Service default/reviews is still referenced by AuthorizationPolicy default/reviews-allow',
      },
      {
        path: 'delete[0]',
        message: 'Service default/reviews is still referenced by Route default/reviews-split',
      },
    ]);
  });

  it('rejects two Services sharing vip:port/protocol, naming both', () => {
    expect(detailsOf(base, [svc('clash', '127.100.0.1')])).toEqual([
      {
        path: 'changes[0].spec.ports[0]',
        message: 'Service default/clash and Service default/reviews both use 127.100.0.1:80/TCP',
      },
    ]);
  });

  it('treats VIPs as global across namespaces', () => {
    expect(detailsOf(base, [svc('reviews', '127.100.0.2', 80, 'TCP', 'shop')])[0]?.message).toBe(
      'Service shop/reviews and Service default/ratings both use 127.100.0.2:80/TCP',
    );
  });

  it.each([
    ['another port', svc('x', '127.100.0.1', 81)],
    ['another protocol', svc('x', '127.100.0.1', 80, 'UDP')],
  ])('allows the same VIP on %s', (_label, change) => {
    expect(() => validateChangeSet(base, [change])).not.toThrow();
  });

  it('allows moving a VIP from a deleted Service to a new one in one change set', () => {
    expect(() =>
      validateChangeSet(base, [
        del('Route', 'reviews-split'),
        del('Service', 'reviews'),
        svc('reviews2', '127.100.0.1'),
      ]),
    ).not.toThrow();
  });

  it('allows two Services to swap VIPs in one change set', () => {
    expect(() =>
      validateChangeSet(base, [svc('reviews', '127.100.0.2'), svc('ratings', '127.100.0.1')]),
    ).not.toThrow();
  });

  it('reports schema problems with the change path and skips deeper checks for them', () => {
    const bad: Change = {
      op: 'put',
      kind: 'Route',
      namespace: 'default',
      name: 'r',
      spec: { service: 'nope' },
    };
    expect(
      detailsOf(base, [bad, { op: 'delete', kind: 'Gateway', namespace: 'default', name: 'g' }]),
    ).toEqual([
      { path: 'changes[0].spec.backends', message: 'is required' },
      { path: 'changes[1].kind', message: expect.stringContaining('must be one of Service') },
    ]);
  });

  it('collects problems from every change and sums them in the message', () => {
    expect(() => validateChangeSet(base, [route('r', 'nope'), svc('clash', '127.100.0.1')])).toThrow(
      /changes\[0\]\.spec\.service .* \(and 1 more\)/,
    );
  });

  it('scans the state at most once per index, and not at all for plain puts', () => {
    let lists = 0;
    const v = viewOf(stateOf(svc('reviews'), route('reviews-split', 'reviews')));
    const counting: StateView = {
      get: (r) => v.get(r),
      list: (k) => {
        lists++;
        return v.list(k);
      },
    };
    validateChangeSet(counting, [route('a', 'reviews'), route('b', 'reviews')]);
    expect(lists).toBe(0);
    validateChangeSet(counting, [svc('x', '127.100.0.8'), svc('y', '127.100.0.9')]);
    expect(lists).toBe(1);
  });
});
