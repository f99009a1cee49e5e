/**
 * Federation model (issue 7): the contract between the model (domain, API,
 * compile) and the transport (relay export stream, importer, status).
 *
 * NAMES. Resource keys stay (kind, namespace, name). Local names are DNS-1123
 * labels (no dots), so a resource imported from cluster `east` is stored under
 * `<name>.east` (`importedName`), with `origin: 'east'` and its spec unchanged:
 * a local write can never produce such a name. `sourceName` gives the name back.
 *
 * EXPORT (relay, in the exporting cluster). After each revision publish
 * `exportedView(state, cluster)`: the cluster's own Services with `export: true`
 * and the own Workloads their selectors match, canonical and sorted (the whole
 * view each time, so a receiver needs no history; skip publishing when
 * `canonicalJson` of the view equals the last one published).
 *
 * IMPORT (importer, in the importing cluster). For a message from peer P
 * (P's revision R, export-stream sequence S, view V), with `plan` the resources
 * expected to clash (the last known skips):
 *
 *   const accepted = V minus plan;
 *   const ic = importChanges(await store.currentState(), P, accepted);
 *   if (!isEmptyImport(ic)) await store.append(importChangeList(ic), {
 *     ...importHeader(P, R, S, { skipped: plan }),  // actor federation:P, reason, metadata
 *     idempotencyKey: importIdempotencyKey(P, S),  // a redelivery writes nothing
 *     validate: (view, changes) => {
 *       const locked = splitImport(view, P, V).skipped;  // under the append lock
 *       if (!canonicalEqual(locked, plan)) throw new ImportPlanChanged(P, locked, head);
 *       validateImport(view, changes, P);
 *     },
 *   });
 *
 * and on ImportPlanChanged plan again with its `skipped` (services/importer
 * import-append.ts). A VIP clash thus skips only the clashing Service (and the
 * Workloads only it selects); the rest of V imports in the same change set, and
 * the reason and metadata name what was skipped. Ownership conflicts and
 * malformed views still refuse the whole import.
 *
 * After the cache TTL of an unreachable peer: `withdrawChanges(state, P)` with
 * `withdrawHeader(P, reason)`. `lastImport(changeSet.metadata)` reads the peer
 * revision/sequence back (metadata is jsonb, hashed and verified with the change
 * set: no extra columns are needed).
 *
 * WHO MAY WRITE WHAT (federation-rules.ts). `validateChangeSet` (every local write: API, rollback,
 * meshctl) refuses with ConflictError (409) any change to a dotted name, to a
 * resource that has an origin, or carrying an origin, naming the owning cluster.
 * `validateImport` (only the importer passes it) accepts only Services and
 * Workloads named `<label>.<P>` with origin P. The store itself stays neutral:
 * the caller's `validate` decides, and the API never passes `validateImport`.
 * The API answers a dotted name in a request with that 409 before any schema
 * check (`ownershipOfInput`), where the name would merely be invalid (400).
 * `importChanges` reads only resources with origin P (or at the keys of V) from
 * `current`, so the importer may pass just that part of its state.
 *
 * GLOBAL SERVICES. A local Service and the imported Services with the same
 * namespace and source name form one global service (`globalKeyOf`). Backends:
 * the local Workloads matching the local selector, plus each origin's imported
 * Workloads matching that origin's Service selector (never a cross-origin
 * match). `affinity` of the local Service, else of the imported one (default
 * local): local = local backends, remote ones only when there are none; remote
 * = the reverse; none = all, by weight. They may share a VIP; any other VIP
 * collision is refused. An imported Service without local counterpart is
 * programmed on its own VIP. Routes and AuthorizationPolicies only ever name
 * local Services (their `service` field is a label).
 */
import { canonicalEqual } from './canonical';
import { type ErrorDetail, ValidationError } from './errors';
import type { Change } from './events';
import { type Resource, type ResourceRef, refKey, type StoredResource } from './resource';
import { isDns1123Label } from './schemas';
import type { MeshState } from './state';

export const FEDERATION_ACTOR_PREFIX = 'federation:';

/** Kinds a cluster exports (and the only kinds an import may write). */
export const EXPORTED_KINDS: readonly string[] = ['Service', 'Workload'];

export type Affinity = 'local' | 'remote' | 'none';

export function isClusterName(s: string): boolean {
  return isDns1123Label(s);
}

/** `federation:<peer>`: the actor of every import change set from `peer`. */
export function federationActor(peer: string): string {
  return `${FEDERATION_ACTOR_PREFIX}${peer}`;
}

/** The peer an import actor names, or undefined for any other actor. */
export function peerOfActor(actor: string): string | undefined {
  return actor.startsWith(FEDERATION_ACTOR_PREFIX) ? actor.slice(FEDERATION_ACTOR_PREFIX.length) : undefined;
}

/** Name of `name` from cluster `origin` in the importing cluster: `<name>.<origin>`. */
export function importedName(name: string, origin: string): string {
  return `${name}.${origin}`;
}

export function importedRef(ref: ResourceRef, origin: string): ResourceRef {
  return { kind: ref.kind, namespace: ref.namespace, name: importedName(ref.name, origin) };
}

/** `{ name, origin }` of an imported (dotted) name, or undefined for a local name. */
export function splitImportedName(name: string): { name: string; origin: string } | undefined {
  const dot = name.indexOf('.');
  if (dot < 0) return undefined;
  return { name: name.slice(0, dot), origin: name.slice(dot + 1) };
}

/** The name a resource has in its own cluster (what global services group by). */
export function sourceName(r: { name: string }): string {
  // Only imports have dotted names, so the name alone tells (a bare ref has no origin).
  return splitImportedName(r.name)?.name ?? r.name;
}

/** `namespace/sourceName`: Services with the same key form one global service. */
export function globalKeyOf(r: { namespace: string; name: string }): string {
  return `${r.namespace}/${sourceName(r)}`;
}

export function affinityOf(spec: Record<string, unknown>): Affinity {
  const a = spec.affinity;
  return a === 'remote' || a === 'none' ? a : 'local';
}

/** A non-empty selector whose every pair is in `labels`. */
export function labelsMatch(labels: unknown, selector: unknown): boolean {
  if (typeof labels !== 'object' || labels === null || typeof selector !== 'object' || selector === null)
    return false;
  const l = labels as Record<string, unknown>;
  const entries = Object.entries(selector as Record<string, unknown>);
  return entries.length > 0 && entries.every(([k, v]) => l[k] === v);
}

const byKey = (a: ResourceRef, b: ResourceRef) =>
  refKey(a) < refKey(b) ? -1 : refKey(a) > refKey(b) ? 1 : 0;

/**
 * What `cluster` exports from its own state: Services with `export: true` and
 * the Workloads of their namespace that their selectors match. Imported
 * resources (with an origin) are never re-exported. Sorted by key; specs as stored.
 */
export function exportedView(state: MeshState, cluster?: string): Resource[] {
  const own = (r: StoredResource) => r.origin === undefined || r.origin === cluster;
  const services: StoredResource[] = [];
  const workloads: StoredResource[] = [];
  for (const r of state.resources.values()) {
    if (!own(r)) continue;
    if (r.kind === 'Service' && r.spec.export === true) services.push(r);
    else if (r.kind === 'Workload') workloads.push(r);
  }
  const out = new Map<string, Resource>();
  const plain = (r: StoredResource): Resource => ({
    kind: r.kind,
    namespace: r.namespace,
    name: r.name,
    spec: r.spec,
  });
  // Workloads by `namespace\0key=value`: a selector scans only the bucket of its first pair.
  const byPair = new Map<string, StoredResource[]>();
  for (const w of workloads) {
    const labels = w.spec.labels;
    if (typeof labels !== 'object' || labels === null) continue;
    for (const [k, v] of Object.entries(labels)) {
      const key = `${w.namespace}\0${k}=${String(v)}`;
      const bucket = byPair.get(key);
      if (bucket) bucket.push(w);
      else byPair.set(key, [w]);
    }
  }
  for (const s of services) {
    out.set(refKey(s), plain(s));
    const first = Object.entries((s.spec.selector ?? {}) as Record<string, unknown>)[0];
    if (!first) continue;
    for (const w of byPair.get(`${s.namespace}\0${first[0]}=${String(first[1])}`) ?? [])
      if (labelsMatch(w.spec.labels, s.spec.selector)) out.set(refKey(w), plain(w));
  }
  return [...out.values()].sort(byKey);
}

export interface ImportChanges {
  /** Puts of imported resources (name `<name>.<origin>`, origin set), sorted by key. */
  apply: Change[];
  /** Deletes of what `origin` no longer exports, sorted by key. */
  delete: Change[];
}

export function isEmptyImport(ic: ImportChanges): boolean {
  return ic.apply.length === 0 && ic.delete.length === 0;
}

/** One change list for `store.append`. */
export function importChangeList(ic: ImportChanges): Change[] {
  return [...ic.apply, ...ic.delete];
}

/**
 * The changes that make the importing cluster's copy of `origin`'s exports
 * equal to `exported` (exportedView of the peer). Empty when nothing changed.
 * Throws ValidationError (path `exported[i]...`) for a malformed view.
 */
export function importChanges(
  current: MeshState,
  origin: string,
  exported: readonly Resource[],
): ImportChanges {
  const details: ErrorDetail[] = [];
  if (!isClusterName(origin)) details.push({ path: 'origin', message: 'must be a DNS-1123 label' });
  const wanted = new Map<string, Change>();
  exported.forEach((r, i) => {
    const path = `exported[${i}]`;
    if (!EXPORTED_KINDS.includes(r.kind)) {
      details.push({ path: `${path}.kind`, message: `must be one of ${EXPORTED_KINDS.join(', ')}` });
      return;
    }
    if (typeof r.name !== 'string' || !isDns1123Label(r.name)) {
      details.push({
        path: `${path}.name`,
        message: 'must be a DNS-1123 label (a peer exports only its own)',
      });
      return;
    }
    const ref = importedRef(r, origin);
    if (wanted.has(refKey(ref))) {
      details.push({ path, message: `${r.kind} ${r.namespace}/${r.name} appears more than once` });
      return;
    }
    wanted.set(refKey(ref), { op: 'put', ...ref, spec: r.spec, origin });
  });
  if (details.length > 0)
    throw new ValidationError(
      `invalid export from ${origin}: ${details[0]!.path} ${details[0]!.message}`,
      details,
    );

  const apply: Change[] = [];
  for (const [key, c] of wanted) {
    const cur = current.resources.get(key);
    if (c.op === 'put' && cur && cur.origin === origin && canonicalEqual(cur.spec, c.spec)) continue;
    apply.push(c);
  }
  const del: Change[] = [];
  for (const [key, r] of current.resources) {
    if (r.origin === origin && !wanted.has(key))
      del.push({ op: 'delete', kind: r.kind, namespace: r.namespace, name: r.name });
  }
  return { apply: apply.sort(byKey), delete: del.sort(byKey) };
}

/** Deletes of everything imported from `origin` (after its cache TTL ran out). */
export function withdrawChanges(current: MeshState, origin: string): ImportChanges {
  return importChanges(current, origin, []);
}

/**
 * An exported resource that an import left out (`splitImport` in federation-rules.ts decides,
 * under the append lock). The rest of the peer's view is imported in the same change set.
 */
export interface SkippedImport {
  kind: string;
  namespace: string;
  /** The imported name, `<name>.<origin>`. */
  name: string;
  /**
   * `vip-conflict`: a Service whose VIP is used outside its global service;
   * `selected-only-by-skipped`: a Workload that only skipped Services of its origin select.
   */
  reason: 'vip-conflict' | 'selected-only-by-skipped';
  /** `vip:port/PROTOCOL` of the conflict (vip-conflict only). */
  vip?: string;
  /** The Service that uses the VIP, or the skipped Service that selects the Workload; no origin = local. */
  holder?: ResourceRef & { origin?: string };
  message: string;
}

/** Machine-readable import metadata, stored (and hashed) in change_sets.metadata. */
export interface ImportMetadata {
  federation: {
    origin: string;
    revision: number | null;
    seq: number | null;
    withdrawn?: boolean;
    /** The last view imported before a withdrawal, applied again on reconnect. */
    reimport?: boolean;
    /** The last view applied again because a skipped resource may import now (no new export). */
    reapply?: boolean;
    /** Present only when something was skipped. */
    skipped?: SkippedImport[];
  };
}

export interface ImportHeader {
  actor: string;
  reason: string;
  metadata: ImportMetadata & Record<string, unknown>;
}

/** How many skipped resources a reason names before "and N more" (the metadata has them all). */
const REASON_SKIPS = 3;

/** `skipped 2 of the exported resources: <message>; <message>`. */
export function skippedSummary(skipped: readonly SkippedImport[]): string {
  const shown = skipped.slice(0, REASON_SKIPS).map((s) => s.message);
  const more = skipped.length > REASON_SKIPS ? `; and ${skipped.length - REASON_SKIPS} more` : '';
  return `skipped ${skipped.length} of the exported resources: ${shown.join('; ')}${more}`;
}

export interface ImportHeaderOptions {
  /** What the import left out; named in the reason and listed in the metadata. */
  skipped?: readonly SkippedImport[];
  /** `reimport`: after a withdrawal; `reapply`: the same view again, after a local change. */
  again?: 'reimport' | 'reapply';
}

/** actor, reason and metadata of an import change set from `peer` at its revision / export sequence. */
export function importHeader(
  peer: string,
  revision: number,
  seq: number,
  opts: ImportHeaderOptions = {},
): ImportHeader {
  const federation: ImportMetadata['federation'] = { origin: peer, revision, seq };
  let reason = `import from ${peer} revision ${revision} (export seq ${seq})`;
  if (opts.again === 'reimport') {
    reason += ', re-imported after withdrawal';
    federation.reimport = true;
  } else if (opts.again === 'reapply') {
    reason += ', re-applied after a local change';
    federation.reapply = true;
  }
  if (opts.skipped && opts.skipped.length > 0) {
    reason += `; ${skippedSummary(opts.skipped)}`;
    federation.skipped = [...opts.skipped];
  }
  return { actor: federationActor(peer), reason, metadata: { federation } };
}

/** Header of the change set that withdraws `peer`'s imports (e.g. `cache TTL 300s expired`). */
export function withdrawHeader(peer: string, why: string): ImportHeader {
  return {
    actor: federationActor(peer),
    reason: `withdraw imports from ${peer}: ${why}`,
    metadata: { federation: { origin: peer, revision: null, seq: null, withdrawn: true } },
  };
}

/** Idempotency key of an import: one change set per peer export message. */
export function importIdempotencyKey(peer: string, seq: number): string {
  return `federation:${peer}:${seq}`;
}

/** The import metadata of a change set, or undefined for a local change set. */
export function lastImport(
  metadata: Record<string, unknown> | null | undefined,
): ImportMetadata['federation'] | undefined {
  const f = metadata?.federation as ImportMetadata['federation'] | undefined;
  return f && typeof f.origin === 'string' ? f : undefined;
}

/** The skipped resources an import change set recorded (none for older or malformed metadata). */
export function skippedOf(metadata: Record<string, unknown> | null | undefined): SkippedImport[] {
  const skipped = lastImport(metadata)?.skipped;
  if (!Array.isArray(skipped)) return [];
  return skipped.filter(
    (s): s is SkippedImport =>
      typeof s === 'object' &&
      s !== null &&
      typeof s.kind === 'string' &&
      typeof s.namespace === 'string' &&
      typeof s.name === 'string' &&
      typeof s.message === 'string',
  );
}
