import { canonicalEqual } from './canonical';
import type { Change } from './events';
import { type Resource, refKey, type StoredResource } from './resource';
import type { MeshState } from './state';
import { SERVICE_REFERRING_KINDS, serviceRefOf } from './validate';

/** A resource in a diff; `origin` is set for imported (federated) resources. */
export interface DiffResource extends Resource {
  origin?: string;
}

export interface ResourceChange {
  kind: string;
  namespace: string;
  name: string;
  before: Record<string, unknown>;
  after: Record<string, unknown>;
  /** Only present when the owning cluster differs or is set on either side. */
  beforeOrigin?: string;
  afterOrigin?: string;
}

/** Differences from state a to state b; every list sorted by refKey. Versions are ignored. */
export interface StateDiff {
  added: DiffResource[];
  removed: DiffResource[];
  changed: ResourceChange[];
}

const byKey = (a: { key: string }, b: { key: string }) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

function toDiffResource(r: StoredResource): DiffResource {
  const out: DiffResource = { kind: r.kind, namespace: r.namespace, name: r.name, spec: r.spec };
  if (r.origin !== undefined) out.origin = r.origin;
  return out;
}

function sameResource(x: StoredResource, y: StoredResource): boolean {
  return x.origin === y.origin && canonicalEqual(x.spec, y.spec);
}

export function diffStates(a: MeshState, b: MeshState): StateDiff {
  const added: { key: string; r: DiffResource }[] = [];
  const removed: { key: string; r: DiffResource }[] = [];
  const changed: { key: string; c: ResourceChange }[] = [];
  for (const [key, ra] of a.resources) {
    const rb = b.resources.get(key);
    if (!rb) removed.push({ key, r: toDiffResource(ra) });
    else if (!sameResource(ra, rb)) {
      const c: ResourceChange = {
        kind: rb.kind,
        namespace: rb.namespace,
        name: rb.name,
        before: ra.spec,
        after: rb.spec,
      };
      if (ra.origin !== undefined) c.beforeOrigin = ra.origin;
      if (rb.origin !== undefined) c.afterOrigin = rb.origin;
      changed.push({ key, c });
    }
  }
  for (const [key, rb] of b.resources) if (!a.resources.has(key)) added.push({ key, r: toDiffResource(rb) });
  return {
    added: added.sort(byKey).map((x) => x.r),
    removed: removed.sort(byKey).map((x) => x.r),
    changed: changed.sort(byKey).map((x) => x.c),
  };
}

export function isEmptyDiff(d: StateDiff): boolean {
  return d.added.length === 0 && d.removed.length === 0 && d.changed.length === 0;
}

/**
 * The changes that take `from` to `to` (rollback). Ordered so that Service
 * references stay valid when applied one at a time:
 *   1. deletes of Routes/Policies;
 *   2. deletes of everything else that nothing still points at (so a Service
 *      that is replaced by another on the same VIP goes before the new one);
 *   3. puts of Services and other kinds, then 4. puts of Routes/Policies;
 *   5. deletes of Services still referenced until step 4 re-pointed their referrers.
 * Within each group the order is by refKey, so the output is deterministic.
 */
export function changesToReach(from: MeshState, to: MeshState): Change[] {
  const d = diffStates(from, to);
  const referring = (kind: string) => SERVICE_REFERRING_KINDS.includes(kind);

  // Services still referenced after step 1: by a from-referrer that is not deleted.
  const heldServices = new Set<string>();
  for (const r of from.resources.values()) {
    const target = serviceRefOf(r);
    if (target && to.resources.has(refKey(r))) heldServices.add(refKey(target));
  }

  const del = (r: Resource): Change => ({ op: 'delete', kind: r.kind, namespace: r.namespace, name: r.name });
  const put = (key: string): Change => {
    const r = to.resources.get(key)!;
    const c: Change = { op: 'put', kind: r.kind, namespace: r.namespace, name: r.name, spec: r.spec };
    if (r.origin !== undefined) c.origin = r.origin;
    return c;
  };

  const puts = [...d.added.map(refKey), ...d.changed.map(refKey)].sort();
  return [
    ...d.removed.filter((r) => referring(r.kind)).map(del),
    ...d.removed.filter((r) => !referring(r.kind) && !heldServices.has(refKey(r))).map(del),
    ...puts.filter((k) => !referring(to.resources.get(k)!.kind)).map(put),
    ...puts.filter((k) => referring(to.resources.get(k)!.kind)).map(put),
    ...d.removed.filter((r) => !referring(r.kind) && heldServices.has(refKey(r))).map(del),
  ];
}
