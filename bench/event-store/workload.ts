import { randomBytes, randomUUID } from 'node:crypto';
import type { Change } from '@meshplane/domain';

const TIERS = ['frontend', 'backend', 'data'] as const;

/**
 * Workload number `i` at generation `gen`: a realistic spec on a loopback
 * address (127.0.1.x). A new `gen` always changes the spec (labels.version),
 * so an update is never a no-op.
 */
export function workload(i: number, gen: number): Change & { op: 'put' } {
  const svc = i % 250;
  const app = `svc-${svc}`;
  return {
    op: 'put',
    kind: 'Workload',
    namespace: `team-${svc % 8}`,
    name: `${app}-${i.toString(36).padStart(4, '0')}`,
    spec: {
      address: `127.0.1.${(i % 254) + 1}`,
      node: `node-${i % 16}`,
      identity: app,
      labels: {
        app,
        version: `v${gen}`,
        tier: TIERS[svc % 3]!,
        'app.kubernetes.io/part-of': 'bench-shop',
      },
      weight: 1 + (i % 100),
    },
  };
}

export function traceparent(): string {
  return `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
}

export function appendOpts(actor: string, reason: string) {
  return { actor, reason, requestId: randomUUID(), traceContext: traceparent() };
}

/**
 * Puts over a fixed population of `population` workloads: the first pass
 * creates them, later passes update them (a new generation each pass), so the
 * state stays at `population` resources however long a phase runs, and no put
 * is ever a no-op. One stream per log: every appender on a log draws from it.
 */
export class WorkloadStream {
  private n = 0;
  constructor(readonly population: number) {}

  next(): Change & { op: 'put' } {
    const i = this.n++;
    return workload(i % this.population, 1 + Math.floor(i / this.population));
  }

  changeSet(size: number): (Change & { op: 'put' })[] {
    return Array.from({ length: size }, () => this.next());
  }

  get drawn(): number {
    return this.n;
  }
}
