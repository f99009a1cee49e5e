import type { Change } from '@meshplane/domain';
import fc from 'fast-check';
import { cloneMapSet, halfAppliedServices, type MapSet } from './maps';
import { applyOpToMapSet, type Op } from './plan';
import { policy, route, service, workload } from './test-fixtures';

/*
 * Random meshes for the property tests of plan and incremental compile: a few
 * services (VIPs 127.100.0.x) with optional UDP ports, targetPorts, Routes and
 * policies, and workloads (127.0.1.x, some sharing an address) on two nodes.
 */

export const NODES = ['n1', 'n2'];
const SERVICES = ['s0', 's1', 's2', 's3'];
const IDENTITIES = ['a', 'b', 'c'];

export const workloadArb = (i: number) =>
  fc.record({
    present: fc.boolean(),
    app: fc.constantFrom(...SERVICES),
    track: fc.constantFrom('stable', 'canary'),
    node: fc.constantFrom(...NODES),
    weight: fc.integer({ min: 1, max: 3 }),
    identity: fc.constantFrom(...IDENTITIES),
    // Two workloads may share an address (same destination: weights add up).
    address: fc.constantFrom(`127.0.1.${i + 1}`, `127.0.1.${i + 1}`, '127.0.1.50'),
  });

export const serviceArb = fc.record({
  present: fc.boolean(),
  udp: fc.boolean(),
  targetPort: fc.constantFrom(undefined, 8080, 9090),
  route: fc.option(fc.tuple(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 1, max: 100 })), {
    nil: undefined,
  }),
  allow: fc.subarray(IDENTITIES),
  deny: fc.subarray(IDENTITIES),
  denyPort: fc.boolean(),
});

export const stateArb = fc.record({
  services: fc.tuple(...SERVICES.map(() => serviceArb)),
  workloads: fc.tuple(...Array.from({ length: 6 }, (_, i) => workloadArb(i))),
});

export type StateSpec = typeof stateArb extends fc.Arbitrary<infer T> ? T : never;

export function changesOf(s: StateSpec): Change[] {
  const out: Change[] = [];
  s.services.forEach((svc, i) => {
    const name = SERVICES[i]!;
    if (!svc.present) return;
    const tcp = {
      port: 80,
      protocol: 'TCP' as const,
      ...(svc.targetPort ? { targetPort: svc.targetPort } : {}),
    };
    const ports = svc.udp ? [tcp, { port: 53, protocol: 'UDP' as const }] : [tcp];
    out.push(service(name, `127.100.0.${i + 1}`, { ports }));
    if (svc.route)
      out.push(
        route(name, name, [
          { selector: { track: 'stable' }, weight: svc.route[0] },
          { selector: { track: 'canary' }, weight: svc.route[1] },
        ]),
      );
    if (svc.allow.length) out.push(policy(`${name}-allow`, name, 'ALLOW', svc.allow));
    if (svc.deny.length)
      out.push(policy(`${name}-deny`, name, 'DENY', svc.deny, svc.denyPort ? { ports: [53] } : {}));
  });
  s.workloads.forEach((w, i) => {
    if (!w.present) return;
    out.push(
      workload(`w${i}`, w.address, w.node, {
        labels: { app: w.app, track: w.track },
        identity: w.identity,
        weight: w.weight,
      }),
    );
  });
  return out;
}

/** Applies ops entry by entry (a batch is not atomic in the kernel either), checking principle 6 in between. */
export function applyChecked(maps: MapSet, ops: Op[]): void {
  for (const op of ops) {
    for (let i = 1; i <= op.keys.length; i++) {
      const partial = cloneMapSet(maps);
      applyOpToMapSet(partial, op, i);
      const problems = halfAppliedServices(partial);
      if (problems.length)
        throw new Error(`after ${i}/${op.keys.length} of ${op.action} ${op.map}: ${problems.join('; ')}`);
    }
    applyOpToMapSet(maps, op);
  }
}
