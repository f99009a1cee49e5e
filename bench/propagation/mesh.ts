/**
 * The mesh of the propagation benchmark: `services` Services, each with 3 Workloads spread over
 * `nodes` node names, all on loopback (VIPs 127.100.x.y, workloads 127.1-3.x.y), and the
 * single-resource changes measured on it (one Workload's weight, a canary shift).
 */
import type { Change } from '@meshplane/domain';
import { prng } from '../lib';

export const WORKLOADS_PER_SERVICE = 3;

const NAMESPACES = 20;

export function namespaceOf(svc: number): string {
  return `ns-${svc % NAMESPACES}`;
}

export function serviceChange(svc: number): Change {
  return {
    op: 'put',
    kind: 'Service',
    namespace: namespaceOf(svc),
    name: `svc-${svc}`,
    spec: {
      vip: `127.100.${svc >> 8}.${svc & 255}`,
      ports: [{ port: 8080, targetPort: 9080, protocol: 'TCP' }],
      selector: { app: `svc-${svc}` },
    },
  };
}

export function workloadChange(svc: number, j: number, nodes: number, weight = 1): Change {
  const k = svc * WORKLOADS_PER_SERVICE + j;
  return {
    op: 'put',
    kind: 'Workload',
    namespace: namespaceOf(svc),
    name: `svc-${svc}-w${j}`,
    spec: {
      address: `127.${1 + (k >> 16)}.${(k >> 8) & 255}.${k & 255}`,
      node: `node-${k % nodes}`,
      labels: { app: `svc-${svc}`, version: `v${j + 1}` },
      identity: `svc-${svc}`,
      weight,
    },
  };
}

/** The whole mesh in change sets of `chunk` services (with their workloads). */
export function seedChangeSets(services: number, nodes: number, chunk: number): Change[][] {
  if (services > 65536)
    throw new Error('the address plan (VIPs in 127.100.0.0/16) holds at most 65536 services');
  const out: Change[][] = [];
  for (let s = 0; s < services; s += chunk) {
    const cs: Change[] = [];
    for (let i = s; i < Math.min(services, s + chunk); i++) {
      cs.push(serviceChange(i));
      for (let j = 0; j < WORKLOADS_PER_SERVICE; j++) cs.push(workloadChange(i, j, nodes));
    }
    out.push(cs);
  }
  return out;
}

/**
 * Single-resource changes: a random Workload's weight moves to the next value of 1..4, so every
 * change rewrites one service's slot table on every node (never a no-op). Reproducible from `seed`.
 */
export class WeightChanges {
  private readonly weights = new Map<number, number>();
  private readonly rand: () => number;

  constructor(
    readonly services: number,
    readonly nodes: number,
    seed: number,
  ) {
    this.rand = prng(seed);
  }

  next(): Change {
    const k = Math.floor(this.rand() * this.services * WORKLOADS_PER_SERVICE);
    const w = ((this.weights.get(k) ?? 1) % 4) + 1;
    this.weights.set(k, w);
    return workloadChange(Math.floor(k / WORKLOADS_PER_SERVICE), k % WORKLOADS_PER_SERVICE, this.nodes, w);
  }
}
