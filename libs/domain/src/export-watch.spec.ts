import fc from 'fast-check';
import { canonicalJson } from './canonical';
import type { CommittedEvent } from './events';
import { ExportWatch } from './export-watch';
import { exportedView } from './federation';
import { cloneState, emptyState, evolveInPlace, type MeshState } from './state';

// Small pools, so that events hit exported services, their workloads and everything else.
const ns = fc.constantFrom('default', 'shop');
const labels = fc.record(
  { app: fc.constantFrom('a', 'b'), tier: fc.constantFrom('web', 'db') },
  { requiredKeys: [] },
);
const origin = fc.constantFrom(undefined, 'local', 'east');

const eventArb: fc.Arbitrary<Omit<CommittedEvent, 'revision' | 'seq'>> = fc.oneof(
  fc.record({
    kind: fc.constant('Service'),
    namespace: ns,
    name: fc.constantFrom('s1', 's2', 's3'),
    op: fc.constantFrom('put' as const, 'put' as const, 'delete' as const),
    spec: fc.record({ export: fc.constantFrom(true, false, undefined), selector: labels }),
    prevVersion: fc.constant(null),
    origin,
  }),
  fc.record({
    kind: fc.constant('Workload'),
    namespace: ns,
    name: fc.constantFrom('w1', 'w2', 'w3', 'w4'),
    op: fc.constantFrom('put' as const, 'put' as const, 'delete' as const),
    spec: fc.record({ labels, weight: fc.integer({ min: 1, max: 3 }) }),
    prevVersion: fc.constant(null),
    origin,
  }),
  fc.record({
    kind: fc.constant('Route'),
    namespace: ns,
    name: fc.constant('r1'),
    op: fc.constant('put' as const),
    spec: fc.record({ service: fc.constantFrom('s1', 's2') }),
    prevVersion: fc.constant(null),
    origin: fc.constant(undefined),
  }),
);

const committed = (es: Array<Omit<CommittedEvent, 'revision' | 'seq'>>): CommittedEvent[] =>
  es.map((e, i) => {
    const c = { ...e, revision: i + 1, seq: 1 } as CommittedEvent;
    if (c.origin === undefined) delete c.origin;
    if (c.op === 'delete') delete c.spec;
    return c;
  });

describe('ExportWatch', () => {
  it('property: an event it passes over leaves the exported view as it was', () => {
    fc.assert(
      fc.property(
        fc.array(eventArb, { maxLength: 12 }),
        fc.array(eventArb, { maxLength: 30 }),
        (seed, more) => {
          const state: MeshState = emptyState();
          for (const e of committed(seed)) evolveInPlace(state, e);
          const watch = new ExportWatch('local');
          watch.reset(state);
          for (const e of committed(more)) {
            const before = canonicalJson(exportedView(state, 'local'));
            const flagged = watch.evolve(state, { ...e, revision: state.revision + 1 });
            if (!flagged) expect(canonicalJson(exportedView(state, 'local'))).toBe(before);
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it('flags an exported Service, its selected Workloads, and nothing else', () => {
    const state = emptyState();
    const watch = new ExportWatch('local');
    watch.reset(state);
    const ev = (e: Partial<CommittedEvent>): CommittedEvent =>
      ({
        op: 'put',
        prevVersion: null,
        revision: state.revision + 1,
        seq: 1,
        namespace: 'default',
        ...e,
      }) as CommittedEvent;
    const svc = { export: true, selector: { app: 'a' } };
    expect(
      watch.evolve(state, ev({ kind: 'Service', name: 'quiet', spec: { selector: { app: 'b' } } })),
    ).toBe(false);
    expect(watch.evolve(state, ev({ kind: 'Workload', name: 'w-b', spec: { labels: { app: 'b' } } }))).toBe(
      false,
    );
    expect(watch.evolve(state, ev({ kind: 'Service', name: 'web', spec: svc }))).toBe(true);
    expect(watch.evolve(state, ev({ kind: 'Workload', name: 'w-a', spec: { labels: { app: 'a' } } }))).toBe(
      true,
    );
    // Another namespace, or an import from another cluster: not this cluster's export.
    expect(
      watch.evolve(
        state,
        ev({ kind: 'Workload', name: 'w-a', namespace: 'shop', spec: { labels: { app: 'a' } } }),
      ),
    ).toBe(false);
    expect(
      watch.evolve(
        state,
        ev({ kind: 'Workload', name: 'w-x.east', origin: 'east', spec: { labels: { app: 'a' } } }),
      ),
    ).toBe(false);
    // The workload leaves the selector: the view loses it.
    expect(watch.evolve(state, ev({ kind: 'Workload', name: 'w-a', spec: { labels: { app: 'b' } } }))).toBe(
      true,
    );
    // The service stops exporting: flagged once, then its namespace's workloads are quiet again.
    expect(watch.evolve(state, ev({ kind: 'Service', name: 'web', spec: { selector: { app: 'a' } } }))).toBe(
      true,
    );
    expect(watch.evolve(state, ev({ kind: 'Workload', name: 'w-a', spec: { labels: { app: 'a' } } }))).toBe(
      false,
    );
    // reset() finds exported services in a loaded state.
    const loaded = cloneState(state);
    evolveInPlace(loaded, ev({ kind: 'Service', name: 'web', spec: svc }));
    const fresh = new ExportWatch('local');
    fresh.reset(loaded);
    expect(
      fresh.evolve(loaded, ev({ kind: 'Workload', name: 'w-a', spec: { labels: { app: 'a' }, weight: 2 } })),
    ).toBe(true);
  });
});
