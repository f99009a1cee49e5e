import { canonicalEqual, cloneState, emptyState, type MeshState } from '@meshplane/domain';
import fc from 'fast-check';
import { compile } from './compile';
import { IdAllocator } from './ids';
import { IncrementalCompiler } from './incremental';
import { MANAGED_MAPS } from './layout';
import {
  cloneMapSet,
  diffMapSets,
  digestMapSet,
  emptyMapSet,
  halfAppliedServices,
  logicalView,
} from './maps';
import { planOps, planTouched } from './plan';
import {
  applyChecked,
  changesOf,
  NODES,
  type StateSpec,
  serviceArb,
  stateArb,
  workloadArb,
} from './test-arbitraries';
import { policy, remove, service, stateOf, workload } from './test-fixtures';

/** `next` as a successor of `prev`: only resources whose spec changed get new objects (as evolve does). */
function successor(prev: MeshState, target: MeshState): { state: MeshState; changed: string[] } {
  const state = cloneState(prev);
  const changed: string[] = [];
  for (const [k, r] of target.resources) {
    const old = prev.resources.get(k);
    if (old && canonicalEqual(old.spec, r.spec)) continue;
    state.resources.set(k, r);
    changed.push(k);
  }
  for (const k of prev.resources.keys()) {
    if (target.resources.has(k)) continue;
    state.resources.delete(k);
    changed.push(k);
  }
  state.revision = prev.revision + 1;
  return { state, changed };
}

const editArb = fc.oneof(
  fc.tuple(fc.constant('w' as const), fc.nat(5), workloadArb(0)),
  fc.tuple(fc.constant('s' as const), fc.nat(3), serviceArb),
);

function applyEdit(spec: StateSpec, [what, i, value]: [string, number, unknown]): StateSpec {
  const next = { services: [...spec.services], workloads: [...spec.workloads] } as StateSpec;
  if (what === 'w')
    (next.workloads as unknown[])[i] = { ...(value as object), address: spec.workloads[i]!.address };
  else (next.services as unknown[])[i] = value;
  return next;
}

const base = [
  service('web', '127.100.0.1'),
  workload('web-1', '127.0.1.1', 'n1'),
  workload('web-2', '127.0.1.2', 'n2'),
  workload('client-1', '127.0.1.9', 'n1', { labels: { app: 'client' }, identity: 'client' }),
  policy('allow', 'web', 'ALLOW', ['client']),
];

describe('IncrementalCompiler', () => {
  it('reset gives the bytes and ids of compile()', () => {
    const state = stateOf(base);
    const { desired } = new IncrementalCompiler('n1').reset(state, IdAllocator.empty());
    const full = compile(state, 'n1');
    expect(diffMapSets(desired.maps, full.maps)).toEqual([]);
    expect(desired.digest).toBe(digestMapSet(full.maps));
    expect(desired.stats).toEqual(full.stats);
  });

  it('an update touches only what the change affects, and keeps ids of unchanged objects', () => {
    const inc = new IncrementalCompiler('n1');
    const s1 = stateOf(base);
    const before = cloneMapSet(inc.reset(s1, IdAllocator.empty()).desired.maps);
    const s2 = stateOf([service('api', '127.100.0.2'), workload('api-1', '127.0.1.5', 'n2')], s1);
    const { desired, touched } = inc.update(s2, ['Service/default/api', 'Workload/default/api-1']);
    // api's service entry, its slot and its backend: nothing of web is rewritten.
    expect(Object.fromEntries(MANAGED_MAPS.map((m) => [m, [...(touched[m] ?? [])].length]))).toMatchObject({
      mesh_services: 1,
      mesh_slots: 1,
      mesh_backends: 1,
      mesh_policy: 0,
    });
    expect(planOps(desired, before, { only: touched }).map((o) => `${o.action} ${o.map}`)).toEqual([
      'update mesh_backends',
      'update mesh_slots',
      'update mesh_services',
    ]);
    expect(desired.ids.services.get('127.100.0.1:80/TCP')).toBe(1);
    expect(desired.ids.services.get('127.100.0.2:80/TCP')).toBe(2);
    // Removing and re-adding never brings an id back within one process.
    inc.update(stateOf([remove('Service', 'api')], s2), ['Service/default/api']);
    const again = inc.update(s2, ['Service/default/api']);
    expect(again.desired.ids.services.get('127.100.0.2:80/TCP')).toBe(3);
  });

  it('a redone service whose entries come back unchanged touches nothing; a weight change only its slots', () => {
    const inc = new IncrementalCompiler('n1');
    const s1 = stateOf([
      service('api', '127.100.0.2'),
      workload('api-1', '127.0.1.5', 'n2'),
      workload('api-2', '127.0.1.6', 'n2'),
    ]);
    inc.reset(s1, IdAllocator.empty());
    // A label no selector reads: api is recompiled, and every entry comes out the same.
    const s2 = stateOf([workload('api-1', '127.0.1.5', 'n2', { labels: { app: 'api', team: 'x' } })], s1);
    const same = inc.update(s2, ['Workload/default/api-1']);
    expect(MANAGED_MAPS.flatMap((m) => [...(same.touched[m] ?? [])])).toEqual([]);
    expect(same.desired.digest).toBe(digestMapSet(compile(s2, 'n1').maps));
    const s3 = stateOf([workload('api-2', '127.0.1.6', 'n2', { weight: 3 })], s2);
    const weighted = inc.update(s3, ['Workload/default/api-2']);
    expect(
      Object.fromEntries(MANAGED_MAPS.map((m) => [m, [...(weighted.touched[m] ?? [])].length])),
    ).toMatchObject({
      mesh_services: 1, // its slot count
      mesh_backends: 0,
      mesh_policy: 0,
    });
    expect([...(weighted.touched.mesh_slots ?? [])].length).toBeGreaterThan(0);
    expect(diffMapSets(weighted.desired.maps, compile(s3, 'n1').maps)).toEqual([]);
  });

  it('rewrites local identities only when a local workload changes what they read, or when told to', () => {
    const calls: string[] = [];
    let generation = 0;
    const cgroupIdOf = (w: { namespace: string; name: string }) => {
      calls.push(w.name);
      return BigInt(1000 + generation * 100 + w.name.length);
    };
    const inc = new IncrementalCompiler('n1', { cgroupIdOf });
    const s1 = stateOf(base);
    inc.reset(s1, IdAllocator.empty());
    calls.length = 0;
    // A weight on a local workload: its service is redone, its identity and address are as before.
    const s2 = stateOf([workload('web-1', '127.0.1.1', 'n1', { weight: 3 })], s1);
    const weighted = inc.update(s2, ['Workload/default/web-1']);
    expect(calls).toEqual([]);
    expect(logicalView(weighted.desired.maps)).toEqual(logicalView(compile(s2, 'n1', { cgroupIdOf }).maps));
    // Its identity changed: every local identity is written again.
    const s3 = stateOf([workload('web-1', '127.0.1.1', 'n1', { identity: 'web-v2', weight: 3 })], s2);
    const renamed = inc.update(s3, ['Workload/default/web-1']);
    expect(calls.length).toBeGreaterThan(0);
    expect(logicalView(renamed.desired.maps)).toEqual(logicalView(compile(s3, 'n1', { cgroupIdOf }).maps));
    // A cgroup id moved (re-created) while a local workload's weight changed: the agent asks.
    generation = 1;
    calls.length = 0;
    const s4 = stateOf([workload('web-1', '127.0.1.1', 'n1', { identity: 'web-v2', weight: 2 })], s3);
    const refreshed = inc.update(s4, ['Workload/default/web-1'], { refreshIdentities: true });
    expect(calls.length).toBeGreaterThan(0);
    expect([...(refreshed.touched.mesh_identities ?? [])].length).toBeGreaterThan(0);
    expect(logicalView(refreshed.desired.maps)).toEqual(logicalView(compile(s4, 'n1', { cgroupIdOf }).maps));
  });

  it('property: every update equals compile() up to ids; touched covers every change; delta plans converge', () => {
    fc.assert(
      fc.property(
        stateArb,
        fc.array(editArb, { minLength: 1, maxLength: 8 }),
        fc.constantFrom(...NODES),
        (first, edits, node) => {
          const inc = new IncrementalCompiler(node);
          let state: MeshState = emptyState();
          const actual = emptyMapSet();
          // Small steps (one workload or one service replaced) exercise which services an update recomputes.
          const specs = [first];
          for (const edit of edits) specs.push(applyEdit(specs.at(-1)!, edit));
          specs.forEach((spec, step) => {
            const next = successor(state, stateOf(changesOf(spec)));
            const prevMaps = step === 0 ? emptyMapSet() : cloneMapSet(actual);
            const { desired, touched } =
              step === 0
                ? inc.reset(next.state, IdAllocator.fromMaps(actual))
                : inc.update(next.state, next.changed);
            state = next.state;

            const full = compile(state, node);
            expect(logicalView(desired.maps)).toEqual(logicalView(full.maps));
            expect(desired.digest).toBe(digestMapSet(desired.maps));
            expect(halfAppliedServices(desired.maps)).toEqual([]);
            expect(desired.stats.frontends).toBe(full.stats.frontends);
            // Keys not reported as touched kept their value.
            for (const m of MANAGED_MAPS) {
              const t = new Set(touched[m] ?? []);
              for (const [k, v] of prevMaps[m]) if (!t.has(k)) expect(desired.maps[m].get(k)).toBe(v);
              for (const k of desired.maps[m].keys()) if (!t.has(k)) expect(prevMaps[m].has(k)).toBe(true);
            }
            // The reconciler's clean round: the touched keys alone, no copy of the maps to diff with.
            if (step > 0) {
              const viaTouched = cloneMapSet(prevMaps);
              applyChecked(viaTouched, planTouched(desired, touched, 2));
              expect(diffMapSets(viaTouched, desired.maps)).toEqual([]);
            }
            // The delta plan, applied entry by entry, never exposes a half-applied service and lands on desired.
            applyChecked(actual, planOps(desired, actual, step === 0 ? {} : { only: touched, batchSize: 2 }));
            expect(diffMapSets(actual, desired.maps)).toEqual([]);
          });
        },
      ),
      { numRuns: 60 },
    );
  });

  it('reset reports every entry as touched; an unchanged key touches nothing', () => {
    const inc = new IncrementalCompiler('n1');
    const s1 = stateOf(base);
    const { desired, touched } = inc.reset(s1, IdAllocator.empty());
    for (const m of MANAGED_MAPS) expect(new Set(touched[m])).toEqual(new Set(desired.maps[m].keys()));
    const again = inc.update(s1, [...s1.resources.keys(), 'Workload/default/never-existed']);
    expect(MANAGED_MAPS.flatMap((m) => [...(again.touched[m] ?? [])])).toEqual([]);
  });

  it('a malformed Workload is skipped until fixed, and forgotten when deleted', () => {
    const inc = new IncrementalCompiler('n1');
    const s1 = stateOf(base);
    inc.reset(s1, IdAllocator.empty());
    const broken = workload('web-3', '127.0.1.3', 'n1');
    if (broken.op === 'put') delete broken.spec.address;
    const steps = [
      { state: stateOf([broken], s1), key: 'Workload/default/web-3' },
      { state: stateOf([workload('web-3', '127.0.1.3', 'n1')], s1), key: 'Workload/default/web-3' },
      { state: stateOf([broken], s1), key: 'Workload/default/web-3' },
      { state: s1, key: 'Workload/default/web-3' },
    ];
    for (const { state, key } of steps) {
      const { desired } = inc.update(state, [key]);
      const full = compile(state, 'n1');
      expect(desired.stats.skipped).toEqual(full.stats.skipped);
      expect(logicalView(desired.maps)).toEqual(logicalView(full.maps));
    }
  });

  it('a workload turning local flags every backend at its address, also of services it is not in', () => {
    const inc = new IncrementalCompiler('n1');
    // a and b select different workloads that share one address, on different target ports.
    const s1 = stateOf([
      service('a', '127.100.0.1', { ports: [{ port: 80, protocol: 'TCP', targetPort: 8080 }] }),
      service('b', '127.100.0.2', { ports: [{ port: 80, protocol: 'TCP', targetPort: 9090 }] }),
      workload('a-1', '127.0.1.7', 'n2'),
      workload('b-1', '127.0.1.7', 'n2'),
    ]);
    inc.reset(s1, IdAllocator.empty());
    for (const node of ['n1', 'n2']) {
      const next = stateOf([workload('b-1', '127.0.1.7', node)], s1);
      const { desired, touched } = inc.update(next, ['Workload/default/b-1']);
      expect(logicalView(desired.maps)).toEqual(logicalView(compile(next, 'n1').maps));
      expect(diffMapSets(desired.maps, compile(next, 'n1').maps)).toEqual([]);
      // Both backends change their flag; neither frontend's slots do.
      expect([...(touched.mesh_backends ?? [])]).toHaveLength(2);
    }
  });

  it('a service with an (invalid) empty selector follows every workload of its namespace', () => {
    const inc = new IncrementalCompiler('n1');
    const all = service('all', '127.100.0.9');
    if (all.op === 'put') all.spec.selector = {};
    const s1 = stateOf([...base, all]);
    inc.reset(s1, IdAllocator.empty());
    const steps: Array<{ state: MeshState; changed: string[] }> = [];
    const s2 = stateOf([workload('other-1', '127.0.1.20', 'n2', { labels: { app: 'other' } })], s1);
    steps.push({ state: s2, changed: ['Workload/default/other-1'] });
    const s3 = stateOf(
      [workload('other-1', '127.0.1.20', 'n2', { labels: { app: 'other' }, weight: 3 })],
      s2,
    );
    steps.push({ state: s3, changed: ['Workload/default/other-1'] });
    // The empty selector goes: workload changes stop reaching it; then it comes back.
    const s4 = stateOf([service('all', '127.100.0.9')], s3);
    steps.push({ state: s4, changed: ['Service/default/all'] });
    const s5 = stateOf([remove('Workload', 'web-2')], s4);
    steps.push({ state: s5, changed: ['Workload/default/web-2'] });
    const s6 = stateOf([all], s5);
    steps.push({ state: s6, changed: ['Service/default/all'] });
    const s7 = stateOf([remove('Workload', 'other-1')], s6);
    steps.push({ state: s7, changed: ['Workload/default/other-1'] });
    for (const { state, changed } of steps) {
      const { desired } = inc.update(state, changed);
      expect(logicalView(desired.maps)).toEqual(logicalView(compile(state, 'n1').maps));
    }
  });
});
