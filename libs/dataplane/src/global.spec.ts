import {
  type Change,
  importChangeList,
  importChanges,
  type MeshState,
  type Resource,
} from '@meshplane/domain';
import fc from 'fast-check';
import { compile } from './compile';
import { IdAllocator } from './ids';
import { IncrementalCompiler } from './incremental';
import { halfAppliedServices, logicalView } from './maps';
import { remove, route, service, stateOf, workload } from './test-fixtures';

/*
 * Cluster B (this agent's) holds local resources and what cluster A (`east`)
 * exports, imported the way the importer does it (domain importChanges).
 * B's workloads are on 127.0.1.x, A's on 127.0.2.x; VIPs in 127.100.0.0/16.
 */

const asResource = (c: Change): Resource => {
  if (c.op !== 'put') throw new Error('put expected');
  return { kind: c.kind, namespace: c.namespace, name: c.name, spec: c.spec };
};

function withSpec(c: Change, extra: Record<string, unknown>): Change {
  if (c.op !== 'put') throw new Error('put expected');
  return { ...c, spec: { ...c.spec, ...extra } };
}

/** B's state after importing `exported` from `origin`. */
function imported(base: MeshState, origin: string, exported: Change[]): MeshState {
  return stateOf(importChangeList(importChanges(base, origin, exported.map(asResource))), base);
}

const eastExports = [
  withSpec(service('reviews', '127.100.0.1', { ports: [{ port: 80, protocol: 'TCP', targetPort: 9080 }] }), {
    export: true,
  }),
  workload('reviews-1', '127.0.2.1', 'n1'),
  workload('reviews-2', '127.0.2.2', 'n2'),
];

/** Slots of each frontend (`vip:port/proto` -> backends, one per slot). */
const slots = (s: MeshState, node = 'n1') => {
  const v = logicalView(compile(s, node).maps);
  return Object.fromEntries(Object.entries(v.frontends).map(([k, f]) => [k, [...f.slots].sort()]));
};

describe('global services', () => {
  const local = stateOf([
    service('reviews', '127.100.0.1'),
    workload('reviews-1', '127.0.1.1', 'n1'),
    workload('client-1', '127.0.1.9', 'n1', { labels: { app: 'client' }, identity: 'client' }),
  ]);
  const both = imported(local, 'east', eastExports);

  it('prefers local backends (default affinity local), one frontend on the shared VIP', () => {
    expect(slots(both)).toEqual({ '127.100.0.1:80/TCP': ['127.0.1.1:80/TCP'] });
  });

  it('fails over to the remote backends, with their targetPort, when the local workloads are deleted', () => {
    const failover = stateOf([remove('Workload', 'reviews-1')], both);
    expect(slots(failover)).toEqual({
      '127.100.0.1:80/TCP': ['127.0.2.1:9080/TCP', '127.0.2.2:9080/TCP'],
    });
    const c = compile(failover, 'n1');
    expect(halfAppliedServices(c.maps)).toEqual([]);
  });

  it('affinity remote prefers the remote backends, falling back to local ones', () => {
    const remote = stateOf([withSpec(service('reviews', '127.100.0.1'), { affinity: 'remote' })], both);
    expect(slots(remote)['127.100.0.1:80/TCP']).toEqual(['127.0.2.1:9080/TCP', '127.0.2.2:9080/TCP']);
    const eastGone = imported(remote, 'east', [eastExports[0]!]);
    expect(slots(eastGone)['127.100.0.1:80/TCP']).toEqual(['127.0.1.1:80/TCP']);
  });

  it('affinity none spreads over every cluster by weight', () => {
    const none = stateOf(
      [
        withSpec(service('reviews', '127.100.0.1'), { affinity: 'none' }),
        workload('reviews-1', '127.0.1.1', 'n1', { weight: 2 }),
      ],
      both,
    );
    expect(slots(none)['127.100.0.1:80/TCP']).toEqual([
      '127.0.1.1:80/TCP',
      '127.0.1.1:80/TCP',
      '127.0.2.1:9080/TCP',
      '127.0.2.2:9080/TCP',
    ]);
  });

  it('under affinity none a Route splits the local tier without outweighing the other cluster', () => {
    const routedNone = stateOf(
      [
        withSpec(service('reviews', '127.100.0.1'), { affinity: 'none' }),
        workload('reviews-1', '127.0.1.1', 'n1', { labels: { app: 'reviews', v: '1' } }),
        workload('reviews-2', '127.0.1.2', 'n2', { labels: { app: 'reviews', v: '2' } }),
        route('reviews', 'reviews', [
          { selector: { v: '1' }, weight: 90 },
          { selector: { v: '2' }, weight: 10 },
        ]),
      ],
      both,
    );
    const count = (xs: string[]) =>
      xs.reduce<Record<string, number>>((m, x) => Object.assign(m, { [x]: (m[x] ?? 0) + 1 }), {});
    // Local total 2 (two workloads of weight 1) split 1.8/0.2, A's two workloads 1 each.
    expect(count(slots(routedNone)['127.100.0.1:80/TCP']!)).toEqual({
      '127.0.1.1:80/TCP': 9,
      '127.0.1.2:80/TCP': 1,
      '127.0.2.1:9080/TCP': 5,
      '127.0.2.2:9080/TCP': 5,
    });
  });

  it('a Route splits only the local tier', () => {
    const routed = stateOf(
      [
        workload('reviews-2', '127.0.1.2', 'n2', { labels: { app: 'reviews', v: '2' } }),
        route('reviews', 'reviews', [{ selector: { v: '2' }, weight: 1 }]),
      ],
      both,
    );
    expect(slots(routed)['127.100.0.1:80/TCP']).toEqual(['127.0.1.2:80/TCP']);
  });

  it('programs an imported Service without local counterpart on its own VIP', () => {
    const onlyRemote = imported(local, 'east', [
      withSpec(service('ratings', '127.100.0.7'), { export: true }),
      workload('ratings-1', '127.0.2.7', 'n1'),
    ]);
    expect(slots(onlyRemote)['127.100.0.7:80/TCP']).toEqual(['127.0.2.7:80/TCP']);
  });

  it('never selects across clusters and never treats an imported workload as local', () => {
    // B's local Service selects app=reviews; A's reviews-1 runs on A's node "n1", not B's.
    const c = compile(both, 'n1');
    const v = logicalView(c.maps);
    expect(Object.values(v.identities).sort()).toEqual(['client', 'reviews']);
    expect(v.backends['127.0.2.1:9080/TCP']).toBeUndefined();
    // An imported Service does not pick up B's workloads even though the labels match.
    const onlyRemote = imported(
      stateOf([workload('other-1', '127.0.1.5', 'n1', { labels: { app: 'ratings' } })]),
      'east',
      [
        withSpec(service('ratings', '127.100.0.7'), { export: true }),
        workload('ratings-1', '127.0.2.7', 'n1'),
      ],
    );
    expect(slots(onlyRemote)['127.100.0.7:80/TCP']).toEqual(['127.0.2.7:80/TCP']);
  });

  it('the incremental compiler yields the same maps through import, failover and withdrawal', () => {
    const inc = new IncrementalCompiler('n1');
    let prev = local;
    inc.reset(prev, IdAllocator.empty());
    const steps: MeshState[] = [];
    steps.push(imported(prev, 'east', eastExports));
    steps.push(stateOf([remove('Workload', 'reviews-1')], steps.at(-1)!));
    steps.push(stateOf([withSpec(service('reviews', '127.100.0.1'), { affinity: 'none' })], steps.at(-1)!));
    steps.push(stateOf([workload('reviews-1', '127.0.1.1', 'n1')], steps.at(-1)!));
    steps.push(stateOf([workload('reviews-3', '127.0.1.3', 'n1')], steps.at(-1)!));
    steps.push(imported(steps.at(-1)!, 'east', []));
    steps.push(stateOf([remove('Service', 'reviews')], steps.at(-1)!));
    for (const next of steps) {
      const changed = new Set([...prev.resources.keys(), ...next.resources.keys()]);
      const keys = [...changed].filter((k) => prev.resources.get(k) !== next.resources.get(k));
      const { desired } = inc.update(next, keys);
      expect(logicalView(desired.maps)).toEqual(logicalView(compile(next, 'n1').maps));
      prev = next;
    }
  });
});

/*
 * Random federated states: local and imported (east, west) Services named a/b/c (one VIP
 * per name, so namesakes share it), random affinity and targetPorts, workloads of every
 * cluster on random nodes. The incremental compiler must match compile() at every step.
 */
const NAMES = ['a', 'b', 'c'] as const;
const ORIGINS = [undefined, 'east', 'west'] as const;

const fedStateArb = fc
  .record({
    services: fc.array(
      fc.record({
        o: fc.constantFrom(...ORIGINS),
        n: fc.constantFrom(...NAMES),
        target: fc.constantFrom(80, 81),
        affinity: fc.constantFrom(undefined, 'local', 'remote', 'none'),
      }),
      { maxLength: 6 },
    ),
    workloads: fc.array(
      fc.record({
        o: fc.constantFrom(...ORIGINS),
        i: fc.integer({ min: 1, max: 3 }),
        app: fc.constantFrom(...NAMES),
        node: fc.constantFrom('n1', 'n2'),
        weight: fc.integer({ min: 1, max: 3 }),
      }),
      { maxLength: 8 },
    ),
    routeWeight: fc.option(fc.integer({ min: 1, max: 9 }), { nil: undefined }),
  })
  .map(({ services, workloads, routeWeight }) => {
    const changes = new Map<string, Change>();
    if (routeWeight !== undefined)
      changes.set(
        'R/a',
        route('a', 'a', [
          { selector: { app: 'a', tier: 'x' }, weight: routeWeight },
          { selector: { app: 'a' }, weight: 1 },
        ]),
      );
    for (const s of services) {
      const base = withSpec(
        service(s.n, `127.100.0.${NAMES.indexOf(s.n) + 1}`, {
          ports: [{ port: 80, protocol: 'TCP', targetPort: s.target }],
        }),
        s.affinity ? { affinity: s.affinity } : {},
      );
      const c = s.o === undefined ? base : { ...base, name: `${s.n}.${s.o}`, origin: s.o };
      changes.set(`S/${c.name}`, c);
    }
    for (const w of workloads) {
      const host = `127.0.${ORIGINS.indexOf(w.o) + 1}.${w.i}`;
      const labels: Record<string, string> = w.i === 1 ? { app: w.app, tier: 'x' } : { app: w.app };
      const base = workload(`w${w.i}`, host, w.node, { labels, weight: w.weight });
      const c = w.o === undefined ? base : { ...base, name: `w${w.i}.${w.o}`, origin: w.o };
      changes.set(`W/${c.name}`, c);
    }
    return stateOf([...changes.values()]);
  });

it('incremental equals compile on random federated states, one change at a time', () => {
  fc.assert(
    fc.property(fedStateArb, fc.array(fc.tuple(fedStateArb, fc.nat()), { maxLength: 6 }), (first, steps) => {
      const inc = new IncrementalCompiler('n1');
      let prev = first;
      inc.reset(prev, IdAllocator.empty());
      for (const [target, pick] of steps) {
        // One resource moves towards `target` per revision, so each update is as narrow as it gets.
        const differing = [...new Set([...prev.resources.keys(), ...target.resources.keys()])].filter((k) => {
          const x = prev.resources.get(k);
          const y = target.resources.get(k);
          return !x || !y || JSON.stringify(x.spec) !== JSON.stringify(y.spec);
        });
        if (differing.length === 0) continue;
        const key = differing.sort()[pick % differing.length]!;
        const next: MeshState = { revision: prev.revision + 1, resources: new Map(prev.resources) };
        const r = target.resources.get(key);
        if (r) next.resources.set(key, r);
        else next.resources.delete(key);
        const { desired } = inc.update(next, [key]);
        expect(logicalView(desired.maps)).toEqual(logicalView(compile(next, 'n1').maps));
        prev = next;
      }
    }),
    { numRuns: 200 },
  );
});
