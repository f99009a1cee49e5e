/** The single-resource changes of the API benchmark: the same sequence for the HTTP and the append path. */
import { randomBytes } from 'node:crypto';
import type { Change } from '@meshplane/domain';

/** A Workload as the API takes it (`apply[]` item) and as the store takes it (`Change`). */
export interface WorkloadResource {
  kind: 'Workload';
  namespace: string;
  name: string;
  spec: {
    address: string;
    node: string;
    labels: Record<string, string>;
    identity: string;
    weight: number;
  };
}

const NAMESPACES = 8;
const SERVICES = 100;
const NODES = 16;

/**
 * Workload `i` at generation `gen`, on loopback (127.0.1.x). A new generation always changes
 * the spec (labels.version and weight), so an update is never a no-op.
 */
export function workloadResource(i: number, gen: number): WorkloadResource {
  const svc = i % SERVICES;
  const app = `svc-${svc}`;
  return {
    kind: 'Workload',
    namespace: `team-${svc % NAMESPACES}`,
    name: `${app}-${i.toString(36).padStart(4, '0')}`,
    spec: {
      address: `127.0.1.${(i % 254) + 1}`,
      node: `node-${i % NODES}`,
      labels: { app, version: `v${gen}`, 'app.kubernetes.io/part-of': 'bench-api' },
      identity: app,
      weight: 1 + ((i + gen) % 1000),
    },
  };
}

export function toChange(r: WorkloadResource): Change {
  return { op: 'put', kind: r.kind, namespace: r.namespace, name: r.name, spec: r.spec };
}

/**
 * Updates over a fixed population: change k puts workload k mod population at generation
 * 2 + floor(k / population) (generation 1 is the seeded state), so every change rewrites an
 * existing resource, the state stays the same size, and no change is a no-op.
 */
export class ChangeSequence {
  private k = 0;
  /** `generationOffset` keeps two sequences on one database from ever writing the same spec. */
  constructor(
    readonly population: number,
    readonly generationOffset = 0,
  ) {}

  next(): WorkloadResource {
    const k = this.k++;
    return workloadResource(k % this.population, 2 + this.generationOffset + Math.floor(k / this.population));
  }

  get drawn(): number {
    return this.k;
  }
}

/** The seeded population (generation 1), in chunks of `chunk` resources. */
export function seedChunks(population: number, chunk: number): WorkloadResource[][] {
  const out: WorkloadResource[][] = [];
  for (let i = 0; i < population; i += chunk)
    out.push(Array.from({ length: Math.min(chunk, population - i) }, (_, j) => workloadResource(i + j, 1)));
  return out;
}

export function traceparent(): string {
  return `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
}
