import fc from 'fast-check';
import type { Change, CommittedEvent } from './events';
import { refKey } from './resource';
import { emptyState, evolveInPlace } from './state';
import { IndexedState } from './state-index';
import { validateChangeSet, viewOf } from './validate';

const names = ['a', 'b', 'c'];
const svc = fc.record({
  op: fc.constant('put' as const),
  kind: fc.constant('Service'),
  namespace: fc.constant('default'),
  name: fc.constantFrom(...names),
  spec: fc.record({
    vip: fc.constantFrom('127.100.0.1', '127.100.0.2'),
    ports: fc.constant([{ port: 80, protocol: 'TCP' }]),
    selector: fc.constant({ app: 'x' }),
  }),
});
const route = fc.record({
  op: fc.constant('put' as const),
  kind: fc.constant('Route'),
  namespace: fc.constant('default'),
  name: fc.constantFrom(...names),
  spec: fc.record({
    service: fc.constantFrom(...names),
    backends: fc.constant([{ selector: { app: 'x' }, weight: 1 }]),
  }),
});
const del = fc.record({
  op: fc.constant('delete' as const),
  kind: fc.constantFrom('Service', 'Route'),
  namespace: fc.constant('default'),
  name: fc.constantFrom(...names),
});
const change: fc.Arbitrary<Change> = fc.oneof(svc, route, del);
const changeSet = fc.uniqueArray(change, { minLength: 1, maxLength: 3, selector: refKey });

function outcome(fn: () => void): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    return JSON.stringify((e as { details?: unknown }).details);
  }
}

describe('IndexedState', () => {
  it('validates exactly as a plain scan does, as the state evolves', () => {
    fc.assert(
      fc.property(fc.array(changeSet, { maxLength: 30 }), (sets) => {
        const plain = emptyState();
        const indexed = new IndexedState(emptyState());
        let revision = 0;
        for (const cs of sets) {
          const a = outcome(() => validateChangeSet(viewOf(plain), cs));
          const b = outcome(() => validateChangeSet(indexed.view(), cs));
          expect(b).toBe(a);
          if (a !== 'ok') continue;
          revision++;
          cs.forEach((c, seq) => {
            const e: CommittedEvent = { ...c, revision, seq, prevVersion: null };
            evolveInPlace(plain, e);
            indexed.apply(e);
          });
        }
        expect([...indexed.state.resources.keys()].sort()).toEqual([...plain.resources.keys()].sort());
      }),
      { numRuns: 300 },
    );
  });

  it('lists by kind without scanning other kinds, and drops deleted entries from every index', () => {
    const indexed = new IndexedState(emptyState());
    const put = (
      kind: string,
      name: string,
      spec: Record<string, unknown>,
      revision: number,
    ): CommittedEvent => ({
      op: 'put',
      kind,
      namespace: 'default',
      name,
      spec,
      revision,
      seq: 0,
      prevVersion: null,
    });
    indexed.apply(
      put('Service', 's', { vip: '127.100.0.9', ports: [{ port: 80, protocol: 'TCP' }], selector: {} }, 1),
    );
    indexed.apply(put('Route', 'r', { service: 's', backends: [] }, 2));
    const view = indexed.view();
    expect([...view.list('Route')].map((r) => r.name)).toEqual(['r']);
    expect([...view.servicesUsing!('127.100.0.9:80/TCP')].map((r) => r.name)).toEqual(['s']);
    expect([...view.referrersOf!('Service/default/s')].map((r) => r.name)).toEqual(['r']);
    indexed.apply({
      op: 'delete',
      kind: 'Route',
      namespace: 'default',
      name: 'r',
      revision: 3,
      seq: 0,
      prevVersion: 2,
    });
    indexed.apply({
      op: 'delete',
      kind: 'Service',
      namespace: 'default',
      name: 's',
      revision: 4,
      seq: 0,
      prevVersion: 1,
    });
    expect([...view.referrersOf!('Service/default/s')]).toEqual([]);
    expect([...view.servicesUsing!('127.100.0.9:80/TCP')]).toEqual([]);
    expect([...view.list('Service')]).toEqual([]);
  });
});
