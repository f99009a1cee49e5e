import { ConflictError, type ErrorDetail, ValidationError } from './errors';
import type { Change } from './events';
import {
  EXPORTED_KINDS,
  globalKeyOf,
  importedRef,
  isClusterName,
  labelsMatch,
  type SkippedImport,
  splitImportedName,
} from './federation';
import { type Resource, type ResourceRef, refKey, type StoredResource } from './resource';
import { parseResource } from './schemas';
import { type StateView, vipKeys } from './validate';

/*
 * Who may write what (federation; the model is described in federation.ts):
 * local writers may not touch what another cluster owns, and an import from a
 * peer may write only that peer's resources.
 */

const show = (r: ResourceRef) => `${r.kind} ${r.namespace}/${r.name}`;

/** The cluster that owns what a local change touches, or undefined when it is local. */
function ownerOf(current: StateView | undefined, c: Change): string | undefined {
  const existing = current?.get(c)?.origin;
  if (existing !== undefined) return existing;
  if (c.op === 'put' && c.origin !== undefined) return c.origin;
  return splitImportedName(c.name)?.origin;
}

/**
 * Details for every local change that touches what another cluster owns (a
 * dotted name, a resource with an origin, a put carrying an origin).
 */
export function ownershipConflicts(
  current: StateView | undefined,
  changes: readonly Change[],
  pathOf: (index: number) => string,
): ErrorDetail[] {
  const out: ErrorDetail[] = [];
  changes.forEach((c, i) => {
    const owner = ownerOf(current, c);
    if (owner === undefined) return;
    out.push({
      path: `${pathOf(i)}.name`,
      message: `${show(c)} is owned by cluster ${owner} (imported by federation); change it in cluster ${owner}`,
    });
  });
  return out;
}

/**
 * For a raw write request item (before schema checks, which would call a dotted
 * name merely invalid): the conflict detail when it names an imported resource.
 */
export function ownershipOfInput(input: unknown, path: string): ErrorDetail | undefined {
  if (typeof input !== 'object' || input === null) return undefined;
  const { kind, namespace, name } = input as Record<string, unknown>;
  if (typeof name !== 'string') return undefined;
  const split = splitImportedName(name);
  if (!split || !isClusterName(split.origin)) return undefined;
  const ns = typeof namespace === 'string' ? namespace : 'default';
  return {
    path: `${path}.name`,
    message: `${String(kind)} ${ns}/${name} is owned by cluster ${split.origin} (imported by federation); change it in cluster ${split.origin}`,
  };
}

export function ownershipError(details: ErrorDetail[], headRevision: number): ConflictError {
  const more = details.length > 1 ? ` (and ${details.length - 1} more)` : '';
  return new ConflictError(`${details[0]!.message}${more}`, headRevision, details);
}

/**
 * Validates an import change set from `origin` (the importer's `validate`):
 * only Services and Workloads named `<label>.<origin>` carrying origin
 * `origin`, never a resource another cluster (or this one) owns; specs per
 * schema; VIPs unique except within one global service.
 */
export function validateImport(
  current: StateView,
  changes: readonly Change[],
  origin: string,
  pathOf: (index: number) => string = (i) => `changes[${i}]`,
): void {
  const conflicts: ErrorDetail[] = [];
  const details: ErrorDetail[] = [];
  const seen = new Set<string>();
  changes.forEach((c, i) => {
    const path = pathOf(i);
    const split = splitImportedName(c.name);
    const existing = current.get(c);
    const carried = c.op === 'put' ? c.origin : origin;
    if (split?.origin !== origin || carried !== origin || (existing && existing.origin !== origin)) {
      const owner = existing ? (existing.origin ?? 'local') : (split?.origin ?? 'local');
      conflicts.push({
        path: `${path}.name`,
        message: `${show(c)} is not an import from ${origin} (owner: ${owner}); an import from ${origin} writes only <name>.${origin} with origin ${origin}`,
      });
      return;
    }
    if (seen.has(refKey(c))) details.push({ path, message: `${show(c)} appears more than once` });
    seen.add(refKey(c));
    if (!EXPORTED_KINDS.includes(c.kind)) {
      details.push({ path: `${path}.kind`, message: `an import carries only ${EXPORTED_KINDS.join(', ')}` });
      return;
    }
    if (c.op === 'put') {
      try {
        parseResource({ kind: c.kind, namespace: c.namespace, name: split.name, spec: c.spec }, path);
      } catch (e) {
        if (!(e instanceof ValidationError)) throw e;
        details.push(...e.details);
      }
    }
  });
  if (conflicts.length > 0) throw ownershipError(conflicts, current.revision ?? 0);

  // VIPs: the imported Services may share them only with members of their global service.
  // Users of a VIP after the import: unchanged ones from `current`, then the pending puts (an
  // index of its own: `overlay` would scan every pending change per lookup, O(n²) under the lock).
  const changed = new Set(changes.map(refKey));
  const pendingByVip = new Map<string, Change[]>();
  for (const c of changes) {
    if (c.op !== 'put' || c.kind !== 'Service') continue;
    for (const vk of new Set(vipKeys(c.spec))) {
      const users = pendingByVip.get(vk);
      if (users) users.push(c);
      else pendingByVip.set(vk, [c]);
    }
  }
  const usersAfter = (vk: string): ResourceRef[] => {
    const out: ResourceRef[] = [];
    for (const r of servicesUsing(current, vk)) if (!changed.has(refKey(r))) out.push(r);
    out.push(...(pendingByVip.get(vk) ?? []));
    return out;
  };
  changes.forEach((c, i) => {
    if (c.op !== 'put' || c.kind !== 'Service') return;
    const group = globalKeyOf(c);
    vipKeys(c.spec).forEach((vk, j) => {
      for (const other of usersAfter(vk)) {
        if (refKey(other) === refKey(c) || globalKeyOf(other) === group) continue;
        details.push({
          path: `${pathOf(i)}.spec.ports[${j}]`,
          message: `${show(c)} and ${show(other)} both use ${vk} (only one global service may use a VIP)`,
        });
      }
    });
  });
  if (details.length > 0) {
    const more = details.length > 1 ? ` (and ${details.length - 1} more)` : '';
    throw new ValidationError(
      `invalid import from ${origin}: ${details[0]!.path} ${details[0]!.message}${more}`,
      details,
    );
  }
}

function servicesUsing(view: StateView, vk: string): Iterable<StoredResource> {
  if (view.servicesUsing) return view.servicesUsing(vk);
  const out: StoredResource[] = [];
  for (const s of view.list('Service')) if (vipKeys(s.spec).includes(vk)) out.push(s);
  return out;
}

/** What an import from a peer can take against the current state, and what it leaves out. */
export interface ImportSplit {
  /** The exported resources (peer names) to import. */
  accepted: Resource[];
  /** What is left out and why, sorted by key. */
  skipped: SkippedImport[];
}

type Holder = ResourceRef & { origin?: string };

const holderOf = (r: ResourceRef & { origin?: string }): Holder =>
  r.origin === undefined
    ? { kind: r.kind, namespace: r.namespace, name: r.name }
    : { kind: r.kind, namespace: r.namespace, name: r.name, origin: r.origin };

const showHolder = (h: Holder) =>
  h.origin === undefined ? `local ${show(h)}` : `${show(h)} (imported from ${h.origin})`;

/**
 * Splits `origin`'s whole exported view into what can be imported against `current` and what
 * cannot. A Service is skipped when one of its VIPs is used outside its global service: by a
 * local Service, another peer's import, or another Service of this same view (then both go).
 * A Workload is skipped when it is selected by skipped Services of its origin and by no
 * accepted one: alone it would be an import no Service of its origin uses, and the copy of a
 * peer stays "its view minus what was skipped". A skipped resource imported earlier is deleted
 * (it is not in `accepted`). Run it on the state the append is decided on (in `validate`):
 * a concurrent local write can then neither slip in nor leave a stale skip behind.
 * Malformed views are left to importChanges and validateImport, which refuse them.
 */
export function splitImport(current: StateView, origin: string, exported: readonly Resource[]): ImportSplit {
  const services: StoredResource[] = [];
  const workloads: StoredResource[] = [];
  // The view replaces everything imported from `origin`: its VIPs are checked among themselves.
  const ownVips = new Map<string, StoredResource[]>();
  for (const r of exported) {
    const imported: StoredResource = { ...importedRef(r, origin), spec: r.spec, version: 0, origin };
    if (r.kind === 'Service') {
      services.push(imported);
      for (const vk of new Set(vipKeys(r.spec))) {
        const users = ownVips.get(vk);
        if (users) users.push(imported);
        else ownVips.set(vk, [imported]);
      }
    } else if (r.kind === 'Workload') workloads.push(imported);
  }

  const skipped = new Map<string, SkippedImport>();
  for (const s of services) {
    const self = refKey(s);
    const group = globalKeyOf(s);
    for (const vk of vipKeys(s.spec)) {
      const holders: StoredResource[] = [];
      for (const other of servicesUsing(current, vk)) {
        if (other.origin === origin || refKey(other) === self || globalKeyOf(other) === group) continue;
        holders.push(other);
      }
      for (const other of ownVips.get(vk) ?? []) if (refKey(other) !== self) holders.push(other);
      if (holders.length === 0) continue;
      const holder = holderOf(holders.sort((a, b) => compareKeys(refKey(a), refKey(b)))[0]!);
      skipped.set(self, {
        kind: s.kind,
        namespace: s.namespace,
        name: s.name,
        reason: 'vip-conflict',
        vip: vk,
        holder,
        message: `${show(s)} skipped: ${vk} is used by ${showHolder(holder)} (only one global service may use a VIP)`,
      });
      break;
    }
  }

  if (skipped.size > 0) {
    const selecting = (w: StoredResource, accepted: boolean) =>
      services.filter(
        (s) =>
          s.namespace === w.namespace &&
          skipped.has(refKey(s)) !== accepted &&
          labelsMatch(w.spec.labels, s.spec.selector),
      );
    for (const w of workloads) {
      const bySkipped = selecting(w, false);
      if (bySkipped.length === 0 || selecting(w, true).length > 0) continue;
      const holder = holderOf(bySkipped.sort((a, b) => compareKeys(refKey(a), refKey(b)))[0]!);
      skipped.set(refKey(w), {
        kind: w.kind,
        namespace: w.namespace,
        name: w.name,
        reason: 'selected-only-by-skipped',
        holder,
        message: `${show(w)} skipped: selected only by skipped ${show(holder)}`,
      });
    }
  }

  return {
    accepted: exported.filter((r) => !skipped.has(refKey(importedRef(r, origin)))),
    skipped: [...skipped.entries()].sort(([a], [b]) => compareKeys(a, b)).map(([, s]) => s),
  };
}

const compareKeys = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The split an import was planned with is not the one the state under the append lock gives
 * (a local write came in between): nothing was written; plan again with `skipped`.
 */
export class ImportPlanChanged extends ConflictError {
  constructor(
    readonly origin: string,
    readonly skipped: SkippedImport[],
    headRevision: number,
  ) {
    super(
      `the import from ${origin} was planned against an older state: ${skipped.length} resource(s) to skip at revision ${headRevision}`,
      headRevision,
      skipped.map((s) => ({ path: refKey(s), message: s.message })),
    );
  }
}

/**
 * Whether a skip may be over, judged by what its holder is now (undefined: gone). Only a
 * VIP conflict with something outside the skipped resource's own origin can end without a new
 * export from that origin; the importer then plans the last view again (under the lock).
 */
export function skipMayHaveCleared(s: SkippedImport, holderNow: StoredResource | undefined): boolean {
  if (s.reason !== 'vip-conflict' || !s.holder || !s.vip) return false;
  if (s.holder.origin !== undefined && s.holder.origin === splitImportedName(s.name)?.origin) return false;
  if (holderNow?.kind !== 'Service') return true;
  return !vipKeys(holderNow.spec).includes(s.vip) || globalKeyOf(holderNow) === globalKeyOf(s);
}
