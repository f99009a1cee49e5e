import { type ErrorDetail, ValidationError } from './errors';
import type { Change } from './events';
import { globalKeyOf } from './federation';
import { ownershipConflicts, ownershipError } from './federation-rules';
import { type ResourceRef, refKey, type StoredResource } from './resource';
import { parseResource, parseResourceRef } from './schemas';
import type { MeshState } from './state';

/**
 * A read-only view of a state. The event store declares a structurally
 * identical interface, so either side can hand one to the other.
 */
export interface StateView {
  /** Revision of the state (for the head a ConflictError reports); absent when unknown. */
  revision?: number;
  get(ref: ResourceRef): StoredResource | undefined;
  list(kind?: string): Iterable<StoredResource>;
  /** Optional index: Services that use `vip:port/protocol`. Without it, validation scans. */
  servicesUsing?(vipKey: string): Iterable<StoredResource>;
  /** Optional index: Routes and policies that name the Service with this refKey. */
  referrersOf?(serviceKey: string): Iterable<StoredResource>;
}

export function viewOf(state: MeshState): StateView {
  return {
    revision: state.revision,
    get: (ref) => state.resources.get(refKey(ref)),
    *list(kind?: string) {
      for (const r of state.resources.values()) if (kind === undefined || r.kind === kind) yield r;
    },
  };
}

/**
 * The view `changes` would produce on top of `base`, without copying `base`: a
 * small map of overrides (null = deleted). Later changes to the same key win.
 * Pending puts carry `version: revision` (0 = not yet committed).
 */
export function overlay(base: StateView, changes: readonly Change[], revision = 0): StateView {
  const overrides = new Map<string, StoredResource | null>();
  for (const c of changes) {
    if (c.op === 'delete') {
      overrides.set(refKey(c), null);
      continue;
    }
    const r: StoredResource = {
      kind: c.kind,
      namespace: c.namespace,
      name: c.name,
      spec: c.spec,
      version: revision,
    };
    if (c.origin !== undefined) r.origin = c.origin;
    overrides.set(refKey(c), r);
  }
  // Index lookups see the base through the overrides: changed or deleted entries
  // are dropped from the base's answer, and pending puts are added to it.
  const through = (fromBase: Iterable<StoredResource>, matches: (r: StoredResource) => boolean) => {
    const out: StoredResource[] = [];
    for (const r of fromBase) if (!overrides.has(refKey(r))) out.push(r);
    for (const o of overrides.values()) if (o && matches(o)) out.push(o);
    return out;
  };
  const indexes: Pick<StateView, 'servicesUsing' | 'referrersOf'> = {};
  if (base.servicesUsing) {
    const byVip = base.servicesUsing.bind(base);
    indexes.servicesUsing = (vk) =>
      through(byVip(vk), (o) => o.kind === 'Service' && vipKeys(o.spec).includes(vk));
  }
  if (base.referrersOf) {
    const refs = base.referrersOf.bind(base);
    indexes.referrersOf = (sk) =>
      through(refs(sk), (o) => {
        const t = serviceRefOf(o);
        return t !== undefined && refKey(t) === sk;
      });
  }
  return {
    ...indexes,
    ...(base.revision !== undefined ? { revision: base.revision } : {}),
    get(ref) {
      const o = overrides.get(refKey(ref));
      return o === undefined ? base.get(ref) : (o ?? undefined);
    },
    *list(kind?: string) {
      const seen = new Set<string>();
      for (const r of base.list(kind)) {
        const key = refKey(r);
        const o = overrides.get(key);
        if (o === undefined) yield r;
        else {
          seen.add(key);
          if (o) yield o;
        }
      }
      for (const [key, o] of overrides) {
        if (o && !seen.has(key) && (kind === undefined || o.kind === kind)) yield o;
      }
    },
  };
}

/** Kinds whose `spec.service` names a Service in the same namespace. */
export const SERVICE_REFERRING_KINDS: readonly string[] = ['Route', 'AuthorizationPolicy'];

/** The Service a Route or AuthorizationPolicy points at, or undefined for other kinds. */
export function serviceRefOf(r: {
  kind: string;
  namespace: string;
  spec: Record<string, unknown>;
}): ResourceRef | undefined {
  if (!SERVICE_REFERRING_KINDS.includes(r.kind) || typeof r.spec.service !== 'string') return undefined;
  return { kind: 'Service', namespace: r.namespace, name: r.spec.service };
}

const show = (r: ResourceRef) => `${r.kind} ${r.namespace}/${r.name}`;

/** Details in a stable order, whichever index produced them. */
function sortedRefs(refs: Iterable<ResourceRef>): ResourceRef[] {
  return [...refs].sort((a, b) => (refKey(a) < refKey(b) ? -1 : refKey(a) > refKey(b) ? 1 : 0));
}

/** The `vip:port/protocol` keys a Service spec claims. */
export function vipKeys(spec: Record<string, unknown>): string[] {
  if (typeof spec.vip !== 'string' || !Array.isArray(spec.ports)) return [];
  return spec.ports.map(
    (p: { port?: unknown; protocol?: unknown }) => `${spec.vip}:${p?.port}/${p?.protocol}`,
  );
}

/**
 * Checks a change set against the state it applies to; throws one
 * ValidationError with every problem. Only what the changes touch is checked:
 * schema of each change, duplicates, Service references of puts, referrers of
 * deleted Services, VIP collisions of put Services. The two indexes that need
 * a scan (VIPs, referrers) are built lazily, at most once per call.
 *
 * These are the rules for LOCAL writes: a change to anything another cluster
 * owns (dotted name, origin) is a ConflictError naming the owner, before
 * anything else is checked. Imports use `validateImport` (federation.ts).
 */
export function validateChangeSet(
  current: StateView,
  changes: readonly Change[],
  pathOf: (index: number) => string = (i) => `changes[${i}]`,
): void {
  const owned = ownershipConflicts(current, changes, pathOf);
  if (owned.length > 0) throw ownershipError(owned, current.revision ?? 0);
  const details: ErrorDetail[] = [];
  const firstIndex = new Map<string, number>();
  // Schema-invalid puts are reported and then skipped: their spec shape is unknown.
  const valid = changes.map((c, i) => {
    const key = refKey(c);
    const first = firstIndex.get(key);
    if (first === undefined) firstIndex.set(key, i);
    else
      details.push({ path: pathOf(i), message: `${show(c)} appears more than once (also ${pathOf(first)})` });
    try {
      if (c.op === 'put')
        parseResource({ kind: c.kind, namespace: c.namespace, name: c.name, spec: c.spec }, pathOf(i));
      else parseResourceRef({ kind: c.kind, namespace: c.namespace, name: c.name }, pathOf(i));
      return true;
    } catch (e) {
      if (!(e instanceof ValidationError)) throw e;
      details.push(...e.details);
      return false;
    }
  });

  const after = overlay(current, changes);
  let referrers: Map<string, ResourceRef[]> | undefined;
  let vips: Map<string, ResourceRef[]> | undefined;

  changes.forEach((c, i) => {
    if (!valid[i]) return;
    if (c.op === 'put') {
      const target = serviceRefOf(c);
      if (target && !after.get(target)) {
        details.push({
          path: `${pathOf(i)}.spec.service`,
          message: `${show(target)} does not exist (referenced by ${show(c)})`,
        });
      }
      if (c.kind === 'Service') {
        const usersOf = (vk: string): Iterable<ResourceRef> => {
          if (after.servicesUsing) return after.servicesUsing(vk);
          vips ??= buildVipIndex(after);
          return vips.get(vk) ?? [];
        };
        const self = refKey(c);
        const group = globalKeyOf(c);
        vipKeys(c.spec).forEach((vk, j) => {
          for (const other of sortedRefs(usersOf(vk))) {
            // A global service's local and imported Services may share a VIP.
            if (refKey(other) === self || globalKeyOf(other) === group) continue;
            details.push({
              path: `${pathOf(i)}.spec.ports[${j}]`,
              message: `${show(c)} and ${show(other)} both use ${vk}`,
            });
          }
        });
      }
    } else if (c.kind === 'Service') {
      let users: Iterable<ResourceRef>;
      if (after.referrersOf) users = after.referrersOf(refKey(c));
      else {
        referrers ??= buildReferrerIndex(after);
        users = referrers.get(refKey(c)) ?? [];
      }
      for (const r of sortedRefs(users)) {
        details.push({ path: pathOf(i), message: `${show(c)} is still referenced by ${show(r)}` });
      }
    }
  });

  if (details.length > 0) {
    const more = details.length > 1 ? ` (and ${details.length - 1} more)` : '';
    throw new ValidationError(
      `invalid change set: ${details[0]!.path} ${details[0]!.message}${more}`,
      details,
    );
  }
}

function buildVipIndex(view: StateView): Map<string, ResourceRef[]> {
  const index = new Map<string, ResourceRef[]>();
  for (const s of view.list('Service')) {
    for (const vk of new Set(vipKeys(s.spec))) {
      const list = index.get(vk);
      if (list) list.push(s);
      else index.set(vk, [s]);
    }
  }
  return index;
}

function buildReferrerIndex(view: StateView): Map<string, ResourceRef[]> {
  const index = new Map<string, ResourceRef[]>();
  for (const kind of SERVICE_REFERRING_KINDS) {
    for (const r of view.list(kind)) {
      const target = serviceRefOf(r);
      if (!target) continue;
      const key = refKey(target);
      const list = index.get(key);
      if (list) list.push(r);
      else index.set(key, [r]);
    }
  }
  return index;
}
