import type { MapBackend, MapEntry } from './backend';
import { fromByteString } from './codec';
import type { CompiledMaps } from './compile';
import type { ManagedMapName } from './layout';
import type { MapSet } from './maps';

/*
 * desired vs actual -> ordered batches of map writes. The order is the whole
 * point (principle 6): a connect() running between any two batches sees only
 * whole services, and policy never fails open.
 *
 *   upserts                                         why this position
 *   1 mesh_id_names    id bookkeeping first         a crash after any later write can re-read the ids
 *   2 mesh_backends    new/changed destinations     slots may only point at existing backends
 *   3 mesh_slots       new tables (new generation)  not live until a service entry names them
 *   4 mesh_policy      verdicts                     before a new identity or a new ALLOW/DENY flag uses them
 *   5 mesh_identities  cgroup -> identity          callers get an identity whose verdicts exist
 *   6 mesh_services    publish: generation flip, count, flags (new services appear here)
 *   deletes, in reverse
 *   7 mesh_services    removed frontends disappear first
 *   8 mesh_slots       old generations, tables of removed frontends
 *   9 mesh_identities  cgroups of removed workloads
 *  10 mesh_policy      verdicts nobody can reach any more (flags were cleared in 6)
 *  11 mesh_backends    destinations no slot points at
 *  12 mesh_id_names    freed ids, last
 *
 * Every op is idempotent (upserting an equal value, deleting a missing key) and
 * the plan is a pure diff, so applying the same desired state twice plans zero
 * ops, and a plan cut short by a failure is finished by the next plan.
 */

export interface Op {
  action: 'update' | 'delete';
  map: ManagedMapName;
  /** Keys as byte strings (one char per byte, as map sets hold them). */
  keys: string[];
  /** Values as byte strings, for updates (same order as keys). */
  values?: string[];
}

/** Keys (byte strings) per map that may have changed since the maps last matched the desired state. */
export type TouchedKeys = Partial<Record<ManagedMapName, Iterable<string>>>;

export interface PlanOptions {
  /** Largest batch (entries per op); default 1000, like StateDB's incremental rounds. */
  batchSize?: number;
  /**
   * Only diff these keys (an incremental round: O(change), not O(maps)). Correct only
   * when every other key already matches; the reconciler drops it after any failure.
   */
  only?: TouchedKeys;
}

const UPSERT_ORDER: readonly ManagedMapName[] = [
  'mesh_id_names',
  'mesh_backends',
  'mesh_slots',
  'mesh_policy',
  'mesh_identities',
  'mesh_services',
];
const DELETE_ORDER: readonly ManagedMapName[] = [
  'mesh_services',
  'mesh_slots',
  'mesh_identities',
  'mesh_policy',
  'mesh_backends',
  'mesh_id_names',
];

function desiredMaps(d: CompiledMaps | MapSet): MapSet {
  return 'maps' in d && 'ids' in d ? (d as CompiledMaps).maps : (d as MapSet);
}

/** Pushes one op of `keys` (and `values`), split into batches of at most `batch` entries. */
function pushChunked(
  ops: Op[],
  batch: number,
  action: Op['action'],
  map: ManagedMapName,
  keys: string[],
  values?: string[],
): void {
  if (keys.length <= batch) {
    // The common incremental round: one small op, no copies.
    if (keys.length > 0) ops.push(values ? { action, map, keys, values } : { action, map, keys });
    return;
  }
  for (let i = 0; i < keys.length; i += batch) {
    const op: Op = { action, map, keys: keys.slice(i, i + batch) };
    if (values) op.values = values.slice(i, i + batch);
    ops.push(op);
  }
}

// An incremental round's keys, once per map, deduplicated (a Set as the compiler hands them over).
function touchedKeys(only: TouchedKeys, map: ManagedMapName): Iterable<string> {
  const keys = only[map];
  return keys === undefined ? [] : keys instanceof Set ? keys : new Set(keys);
}

export function planOps(desired: CompiledMaps | MapSet, actual: MapSet, opts: PlanOptions = {}): Op[] {
  const want = desiredMaps(desired);
  const batch = Math.max(1, opts.batchSize ?? 1000);
  const ops: Op[] = [];
  const only = opts.only;
  for (const map of UPSERT_ORDER) {
    if (only && only[map] === undefined) continue; // nothing touched in this map
    const keys: string[] = [];
    const values: string[] = [];
    const have = actual[map];
    const wanted = want[map];
    if (only) {
      for (const k of touchedKeys(only, map)) {
        const v = wanted.get(k);
        if (v !== undefined && have.get(k) !== v) {
          keys.push(k);
          values.push(v);
        }
      }
    } else
      for (const [k, v] of wanted)
        if (have.get(k) !== v) {
          keys.push(k);
          values.push(v);
        }
    pushChunked(ops, batch, 'update', map, keys, values);
  }
  for (const map of DELETE_ORDER) {
    if (only && only[map] === undefined) continue;
    const keys: string[] = [];
    const candidates = only ? touchedKeys(only, map) : actual[map].keys();
    for (const k of candidates) if (!want[map].has(k) && actual[map].has(k)) keys.push(k);
    pushChunked(ops, batch, 'delete', map, keys);
  }
  return ops;
}

/**
 * planOps for a round whose maps are known to equal the previous desired state (the last
 * apply succeeded): the touched keys alone say what to do, an upsert where the desired maps
 * hold the key and a delete where they do not, without a copy of the maps to compare with.
 * The compiler touches a key only when its value changed, so this plans what planOps would,
 * except a key changed and changed back within one update (rewritten, harmlessly).
 */
export function planTouched(desired: CompiledMaps | MapSet, touched: TouchedKeys, batchSize = 1000): Op[] {
  const want = desiredMaps(desired);
  const batch = Math.max(1, batchSize);
  const ops: Op[] = [];
  const gone = new Map<ManagedMapName, string[]>();
  for (const map of UPSERT_ORDER) {
    if (touched[map] === undefined) continue;
    const keys: string[] = [];
    const values: string[] = [];
    const deletes: string[] = [];
    const wanted = want[map];
    for (const k of touchedKeys(touched, map)) {
      const v = wanted.get(k);
      if (v === undefined) deletes.push(k);
      else {
        keys.push(k);
        values.push(v);
      }
    }
    pushChunked(ops, batch, 'update', map, keys, values);
    gone.set(map, deletes);
  }
  for (const map of DELETE_ORDER) pushChunked(ops, batch, 'delete', map, gone.get(map) ?? []);
  return ops;
}

/** Entries an op writes or deletes (the "ops" count in status is the number of entries). */
export function opEntries(ops: readonly Op[]): number {
  return ops.reduce((n, op) => n + op.keys.length, 0);
}

/**
 * Applies one op to a backend as one batch call. Not an async function: what the backend
 * returns is handed back as is, nothing when its string path completed synchronously (see
 * MapBackend), its own promise otherwise, never wrapped in another one.
 */
export function executeOp(backend: MapBackend, op: Op): void | Promise<void> {
  if (op.action === 'update' && backend.updateStrings)
    return backend.updateStrings(op.map, op.keys, op.values!);
  if (op.action === 'delete' && backend.deleteStrings) return backend.deleteStrings(op.map, op.keys);
  return executeAsBytes(backend, op);
}

async function executeAsBytes(backend: MapBackend, op: Op): Promise<void> {
  if (op.action === 'update') {
    const entries: MapEntry[] = op.keys.map((k, i) => [fromByteString(k), fromByteString(op.values![i]!)]);
    await backend.update(op.map, entries);
  } else {
    await backend.delete(
      op.map,
      op.keys.map((k) => fromByteString(k)),
    );
  }
}

/** Mirrors a successful op into an in-memory copy of the maps (`entries` for a partial batch). */
export function applyOpToMapSet(maps: MapSet, op: Op, entries = op.keys.length): void {
  const m = maps[op.map];
  for (let i = 0; i < entries; i++) {
    if (op.action === 'update') m.set(op.keys[i]!, op.values![i]!);
    else m.delete(op.keys[i]!);
  }
}

/** A readable summary, e.g. `update mesh_backends x3, update mesh_services x1`. */
export function describeOps(ops: readonly Op[]): string {
  return ops.map((op) => `${op.action} ${op.map} x${op.keys.length}`).join(', ') || 'no ops';
}
