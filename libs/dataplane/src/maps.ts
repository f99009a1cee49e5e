import { ByteTable } from './byte-table';
import { byteStringToHex, codecs, protoName, u32ToIpv4 } from './codec';
import { MANAGED_MAPS, MAPS, type ManagedMapName, STRUCTS } from './layout';

/**
 * One map's entries: key bytes -> value bytes, both as byte strings (one char
 * per byte, see bytestr.ts). Strings make Map lookups and comparisons exact and
 * cheap; kernel bytes are only made when a batch goes to a backend, and people
 * are shown hex (byteStringToHex). The map sets this module makes hold them in
 * ByteTables, outside the JS heap (an agent keeps one for the whole mesh); any
 * Map of byte strings does as well (tests build them by hand).
 */
export type MapEntries = Map<string, string>;

/** An empty table of `map`'s key and value sizes. */
export function tableFor(map: ManagedMapName, entries?: Iterable<readonly [string, string]>): ByteTable {
  const { key, value } = MAPS[map];
  return new ByteTable(STRUCTS[key].size, value ? STRUCTS[value].size : 0, entries);
}

/**
 * The agent-managed maps as bytes: what `compile` wants (desired) or what a
 * backend holds (actual, `ReadMaps`). Same shape on both sides, so the diff is
 * a plain per-map key comparison.
 */
export type MapSet = Record<ManagedMapName, MapEntries>;
export type ReadMaps = MapSet;

export type TableSet = Record<ManagedMapName, ByteTable>;

export function emptyMapSet(): TableSet {
  const out = {} as TableSet;
  for (const m of MANAGED_MAPS) out[m] = tableFor(m);
  return out;
}

export function cloneMapSet(maps: MapSet): MapSet {
  const out = {} as MapSet;
  for (const m of MANAGED_MAPS) out[m] = tableFor(m, maps[m]);
  return out;
}

/** Names of maps and hex keys where `a` and `b` differ (missing, extra or other bytes). */
export function diffMapSets(a: MapSet, b: MapSet): string[] {
  const out: string[] = [];
  const hex = byteStringToHex;
  for (const m of MANAGED_MAPS) {
    for (const [k, v] of a[m]) {
      const w = b[m].get(k);
      if (w === undefined) out.push(`${m}/${hex(k)}: only in first`);
      else if (v !== w) out.push(`${m}/${hex(k)}: differs`);
    }
    for (const k of b[m].keys()) if (!a[m].has(k)) out.push(`${m}/${hex(k)}: only in second`);
  }
  return out;
}

export function mapSetsEqual(a: MapSet, b: MapSet): boolean {
  for (const m of MANAGED_MAPS) {
    if (a[m].size !== b[m].size) return false;
    for (const [k, v] of a[m]) if (b[m].get(k) !== v) return false;
  }
  return true;
}

export function countEntries(maps: MapSet): number {
  let n = 0;
  for (const m of MANAGED_MAPS) n += maps[m].size;
  return n;
}

// FNV-1a over the key and value bytes, twice with different seeds: 64 bits without BigInt per
// entry. Both lanes in one pass (every map write of the incremental compiler digests an entry).
// (Until map sets held byte strings it ran over their hex: a meta map written then holds
// another digest, which only makes the next apply rewrite the meta entry.)
const FNV_PRIME = 0x01000193;

/** One entry's share of the digest: two 32-bit lanes, summed per map set. */
export function entryDigest(map: ManagedMapName, key: string, value: string): [number, number] {
  const m = MANAGED_MAPS.indexOf(map);
  let a = (0x811c9dc5 ^ m) >>> 0;
  let b = (0x050c5d1f ^ m) >>> 0;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    a = Math.imul(a ^ c, FNV_PRIME);
    b = Math.imul(b ^ c, FNV_PRIME);
  }
  a = Math.imul(a ^ 0x3d, FNV_PRIME);
  b = Math.imul(b ^ 0x3d, FNV_PRIME);
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    a = Math.imul(a ^ c, FNV_PRIME);
    b = Math.imul(b ^ c, FNV_PRIME);
  }
  return [a >>> 0, b >>> 0];
}

/**
 * Order-independent 64-bit digest of the managed maps: the sum of per-entry
 * hashes, so it needs no sort of 100k keys, equals whichever way the entries
 * were read back, and can be kept up to date entry by entry (incremental
 * compiler). Stored in the meta map to spot drift cheaply; not a security hash.
 */
export function digestMapSet(maps: MapSet): bigint {
  let lo = 0;
  let hi = 0;
  for (const m of MANAGED_MAPS) {
    for (const [k, v] of maps[m]) {
      const [a, b] = entryDigest(m, k, v);
      lo = (lo + a) >>> 0;
      hi = (hi + b) >>> 0;
    }
  }
  return digestOf(lo, hi);
}

export function digestOf(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/**
 * What a connect() could see that breaks principle 6: a service entry whose live
 * slots are missing or point at a missing backend. Empty when every published
 * service is whole. Used by the property tests at every op boundary, and
 * available to operators' "compare the daemon's view with the maps" tooling.
 */
export function halfAppliedServices(maps: MapSet): string[] {
  const problems: string[] = [];
  for (const [k, v] of maps.mesh_services) {
    const key = codecs.serviceKey.decodeStr(k);
    const svc = codecs.serviceValue.decodeStr(v);
    const where = `${u32ToIpv4(key.vip)}:${key.port}/${protoName(key.proto)} (service ${svc.service_id})`;
    for (let slot = 0; slot < svc.slot_count; slot++) {
      const sv = maps.mesh_slots.get(
        codecs.slotKey.encodeStr({ service_id: svc.service_id, generation: svc.generation, slot }),
      );
      if (!sv) {
        problems.push(`${where}: slot ${slot} of generation ${svc.generation} is missing`);
        continue;
      }
      const backendId = codecs.slotValue.decodeStr(sv).backend_id;
      if (!maps.mesh_backends.has(codecs.backendKey.encodeStr({ backend_id: backendId })))
        problems.push(`${where}: slot ${slot} points at missing backend ${backendId}`);
    }
  }
  return problems;
}

/** A readable dump of the managed maps (for logs, tests and debugging). */
export function describeMapSet(maps: MapSet): Record<ManagedMapName, string[]> {
  const out = {} as Record<ManagedMapName, string[]>;
  const show = (o: Record<string, unknown>) =>
    Object.entries(o)
      .map(
        ([k, v]) =>
          `${k}=${typeof v === 'number' && (k === 'vip' || k === 'addr') ? u32ToIpv4(v) : String(v)}`,
      )
      .join(',');
  const decoders: Record<ManagedMapName, [(h: string) => object, (h: string) => object]> = {
    mesh_services: [codecs.serviceKey.decodeStr, codecs.serviceValue.decodeStr],
    mesh_slots: [codecs.slotKey.decodeStr, codecs.slotValue.decodeStr],
    mesh_backends: [codecs.backendKey.decodeStr, codecs.backendValue.decodeStr],
    mesh_identities: [codecs.identityKey.decodeStr, codecs.identityValue.decodeStr],
    mesh_policy: [codecs.policyKey.decodeStr, codecs.policyValue.decodeStr],
    mesh_id_names: [codecs.idNameKey.decodeStr, codecs.idNameValue.decodeStr],
  };
  for (const m of MANAGED_MAPS) {
    const [dk, dv] = decoders[m];
    out[m] = [...maps[m]]
      .map(
        ([k, v]) =>
          `{${show(dk(k) as Record<string, unknown>)}} -> {${show(dv(v) as Record<string, unknown>)}}`,
      )
      .sort();
  }
  return out;
}

/** The maps with ids resolved to what they stand for: equal for two map sets that differ only in ids. */
export interface LogicalMaps {
  /** `vip:port/PROTO` -> flags and the live slot table as `addr:port/PROTO` (slot order). */
  frontends: Record<string, { flags: number; slots: string[] }>;
  /** `frontend identity` -> action. */
  policy: Record<string, number>;
  /** cgroup id (decimal) -> identity name. */
  identities: Record<string, string>;
  /** `addr:port/PROTO` -> backend flags. */
  backends: Record<string, number>;
}

export function logicalView(maps: MapSet): LogicalMaps {
  const dest = new Map<number, string>();
  const out: LogicalMaps = { frontends: {}, policy: {}, identities: {}, backends: {} };
  for (const [k, v] of maps.mesh_backends) {
    const b = codecs.backendValue.decodeStr(v);
    const key = `${u32ToIpv4(b.addr)}:${b.port}/${protoName(b.proto)}`;
    dest.set(codecs.backendKey.decodeStr(k).backend_id, key);
    out.backends[key] = b.flags;
  }
  const names = new Map<number, string>();
  for (const [k, v] of maps.mesh_id_names)
    names.set(codecs.idNameKey.decodeStr(k).identity_id, codecs.idNameValue.decodeStr(v).name);
  const frontendOf = new Map<number, string>();
  for (const [k, v] of maps.mesh_services) {
    const key = codecs.serviceKey.decodeStr(k);
    const svc = codecs.serviceValue.decodeStr(v);
    const name = `${u32ToIpv4(key.vip)}:${key.port}/${protoName(key.proto)}`;
    frontendOf.set(svc.service_id, name);
    const slots: string[] = [];
    for (let slot = 0; slot < svc.slot_count; slot++) {
      const sv = maps.mesh_slots.get(
        codecs.slotKey.encodeStr({ service_id: svc.service_id, generation: svc.generation, slot }),
      );
      slots.push(sv ? (dest.get(codecs.slotValue.decodeStr(sv).backend_id) ?? '?') : '?');
    }
    out.frontends[name] = { flags: svc.flags, slots };
  }
  for (const [k, v] of maps.mesh_policy) {
    const p = codecs.policyKey.decodeStr(k);
    out.policy[
      `${frontendOf.get(p.service_id) ?? p.service_id} ${names.get(p.identity_id) ?? p.identity_id}`
    ] = codecs.policyValue.decodeStr(v).action;
  }
  for (const [k, v] of maps.mesh_identities) {
    const id = codecs.identityValue.decodeStr(v).identity_id;
    out.identities[String(codecs.identityKey.decodeStr(k).cgroup_id)] = names.get(id) ?? String(id);
  }
  return out;
}
