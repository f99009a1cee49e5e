import fc from 'fast-check';
import { canonicalEqual, canonicalJson } from './canonical';
import { changesToReach, diffStates, isEmptyDiff } from './diff';
import type { Change, CommittedEvent } from './events';
import { importedName, sourceName } from './federation';
import { refKey } from './resource';
import { parseResource } from './schemas';
import { applyChanges, emptyState, evolve, getResource, listResources, type MeshState } from './state';
import { overlay, serviceRefOf, validateChangeSet, viewOf } from './validate';

// Random *valid* states: unique VIP keys, every Route/Policy names a Service of
// its own namespace. Small name pools make A and B overlap, so diffs contain
// adds, removes and changes of the same keys.

type Put = Extract<Change, { op: 'put' }>;

const ns = fc.constantFrom('default', 'shop');
const name = fc.constantFrom('a', 'b', 'c', 'd', 'e');
const origin = fc.option(fc.constantFrom('east', 'west'), { nil: undefined });
// Imported resources are named `<name>.<origin>`, as federation stores them.
const withOrigin = (c: Put, o: string | undefined): Put =>
  o === undefined ? c : { ...c, name: importedName(c.name, o), origin: o };

const serviceArb = fc
  .record({
    ns,
    name,
    host: fc.integer({ min: 1, max: 4 }),
    port: fc.constantFrom(80, 443),
    udp: fc.boolean(),
    o: origin,
  })
  .map(
    ({ ns, name, host, port, udp, o }): Put =>
      withOrigin(
        {
          op: 'put',
          kind: 'Service',
          namespace: ns,
          name,
          spec: {
            // Imports get their own VIPs: restoring a local Service whose VIP an import took since is refused.
            vip: `127.100.0.${o === undefined ? host : host + 4}`,
            ports: [{ port, protocol: udp ? 'UDP' : 'TCP' }],
            selector: { app: name },
          },
        },
        o,
      ),
  );

const workloadArb = fc.record({ ns, name, host: fc.integer({ min: 1, max: 9 }), o: origin }).map(
  ({ ns, name, host, o }): Put =>
    withOrigin(
      {
        op: 'put',
        kind: 'Workload',
        namespace: ns,
        name,
        spec: { address: `127.0.1.${host}`, node: 'node-a', labels: { app: name }, identity: name },
      },
      o,
    ),
);

const dependentArb = fc.record({
  policy: fc.boolean(),
  name,
  target: fc.nat(),
  weight: fc.integer({ min: 1, max: 100 }),
});

const stateArb: fc.Arbitrary<MeshState> = fc
  .record({
    services: fc.array(serviceArb, { maxLength: 8 }),
    workloads: fc.array(workloadArb, { maxLength: 4 }),
    dependents: fc.array(dependentArb, { maxLength: 8 }),
    revision: fc.integer({ min: 1, max: 1000 }),
  })
  .map(({ services, workloads, dependents, revision }) => {
    const seen = new Set<string>();
    const uniq = <T extends Put>(c: T, extra: string[] = []) => {
      const keys = [refKey(c), ...extra];
      if (keys.some((k) => seen.has(k))) return false;
      for (const k of keys) seen.add(k);
      return true;
    };
    const vipKey = (s: Put) => {
      const p = (s.spec.ports as { port: number; protocol: string }[])[0]!;
      return `vip:${s.spec.vip}:${p.port}/${p.protocol}`;
    };
    const svcs = services.filter((s) => uniq(s, [vipKey(s)]));
    // Routes and policies only ever name local Services.
    const locals = svcs.filter((s) => s.origin === undefined);
    const deps: Put[] =
      locals.length === 0
        ? []
        : dependents.map((d) => {
            const target = locals[d.target % locals.length]!;
            const service = target.name;
            return d.policy
              ? {
                  op: 'put',
                  kind: 'AuthorizationPolicy',
                  namespace: target.namespace,
                  name: d.name,
                  spec: { service, action: 'DENY', from: [{ identity: 'x' }] },
                }
              : {
                  op: 'put',
                  kind: 'Route',
                  namespace: target.namespace,
                  name: d.name,
                  spec: { service, backends: [{ selector: { app: service }, weight: d.weight }] },
                };
          });
    return applyChanges(
      emptyState(),
      [...svcs, ...workloads.filter((w) => uniq(w)), ...deps.filter((d) => uniq(d))],
      revision,
    );
  });

/** Resources without versions, in key order: what "equal states" means here. */
const content = (s: MeshState) =>
  listResources(s).map(({ kind, namespace, name, spec, origin }) => ({
    kind,
    namespace,
    name,
    spec,
    origin,
  }));

/** Applies changes one event at a time with `evolve`, checking references after every step. */
function replayStepwise(from: MeshState, changes: Change[]): MeshState {
  let s = from;
  changes.forEach((c, seq) => {
    const prev = s.resources.get(refKey(c));
    const event: CommittedEvent = {
      ...c,
      prevVersion: prev?.version ?? null,
      revision: from.revision + 1,
      seq,
    };
    s = evolve(s, event);
    for (const r of s.resources.values()) {
      const target = serviceRefOf(r);
      if (target && !s.resources.has(refKey(target))) {
        throw new Error(`after ${c.op} ${refKey(c)}: ${refKey(r)} names missing ${refKey(target)}`);
      }
    }
  });
  return s;
}

describe('properties', () => {
  it('applying changesToReach(A, B) to A with evolve yields B (ignoring versions), references valid at each step', () => {
    fc.assert(
      fc.property(stateArb, stateArb, (a, b) => {
        const reached = replayStepwise(a, changesToReach(a, b));
        expect(content(reached)).toEqual(content(b));
        expect(isEmptyDiff(diffStates(reached, b))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('the rollback change set (imports left alone) passes validateChangeSet against A', () => {
    fc.assert(
      fc.property(stateArb, stateArb, (a, b) => {
        const imported = (c: Change) => getResource(a, c)?.origin ?? getResource(b, c)?.origin;
        validateChangeSet(
          viewOf(a),
          changesToReach(a, b).filter((c) => imported(c) === undefined),
        );
      }),
      { numRuns: 200 },
    );
  });

  it('diffStates(A, A) is empty and changesToReach(A, A) is []', () => {
    fc.assert(
      fc.property(stateArb, (a) => {
        expect(isEmptyDiff(diffStates(a, a))).toBe(true);
        expect(changesToReach(a, a)).toEqual([]);
      }),
    );
  });

  it('diff sizes match the change count, and every list is sorted by key', () => {
    fc.assert(
      fc.property(stateArb, stateArb, (a, b) => {
        const d = diffStates(a, b);
        expect(changesToReach(a, b)).toHaveLength(d.added.length + d.removed.length + d.changed.length);
        for (const list of [d.added, d.removed, d.changed]) {
          const keys = list.map(refKey);
          expect(keys).toEqual([...keys].sort());
        }
      }),
    );
  });

  it('overlay(A, changes) lists what applying the changes would produce', () => {
    fc.assert(
      fc.property(stateArb, stateArb, (a, b) => {
        const changes = changesToReach(a, b);
        const view = overlay(viewOf(a), changes);
        const listed = [...view.list()].map(refKey).sort();
        expect(listed).toEqual([...b.resources.keys()].sort());
        for (const r of b.resources.values()) expect(view.get(r)?.spec).toEqual(r.spec);
      }),
    );
  });

  it('parseResource accepts generated resources and is idempotent', () => {
    fc.assert(
      fc.property(stateArb, (s) => {
        for (const r of s.resources.values()) {
          const once = parseResource({
            kind: r.kind,
            namespace: r.namespace,
            name: sourceName(r),
            spec: r.spec,
          });
          expect(parseResource(once)).toEqual(once);
        }
      }),
    );
  });
});

describe('canonicalJson properties', () => {
  // Rebuilds every object with its keys in a random order.
  const shuffleKeys = (v: unknown, rnd: () => number): unknown => {
    if (Array.isArray(v)) return v.map((x) => shuffleKeys(x, rnd));
    if (v === null || typeof v !== 'object') return v;
    const entries = Object.entries(v).sort(() => rnd() - 0.5);
    return Object.fromEntries(entries.map(([k, x]) => [k, shuffleKeys(x, rnd)]));
  };

  it('is independent of key order', () => {
    fc.assert(
      fc.property(
        fc.jsonValue(),
        fc.infiniteStream(fc.double({ min: 0, max: 1, noNaN: true })),
        (v, stream) => {
          const it = stream[Symbol.iterator]();
          const shuffled = shuffleKeys(v, () => it.next().value as number);
          expect(canonicalJson(shuffled)).toBe(canonicalJson(v));
          expect(canonicalEqual(shuffled, v)).toBe(true);
        },
      ),
    );
  });

  it('round-trips through JSON.parse to the same canonical bytes', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(canonicalJson(JSON.parse(canonicalJson(v)))).toBe(canonicalJson(v));
      }),
    );
  });
});
