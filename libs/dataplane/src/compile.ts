import type { MeshState, StoredResource } from '@meshplane/domain';
import { codecs } from './codec';
import {
  Addresses,
  addTo,
  chooseRoute,
  type Dest,
  type Frontend,
  targetOf,
  type Workload,
  WorkloadIndex,
} from './frontends';
import { globalKeyOf, groupFrontends, scopedWorkload } from './global';
import { type IdAllocator, type IdAssignments, IdAllocator as Ids } from './ids';
import { MAX_SLOTS_PER_SERVICE } from './layout';
import { emptyMapSet, type MapSet } from './maps';

/*
 * compile(state, node) -> the bytes one node's maps must hold.
 *
 * - Every Service port is a frontend on every node (any node may dial any VIP).
 * - Its backends are the Workloads of the Service's namespace matching its
 *   selector, on any node. A Route (same namespace, `spec.service`; the one
 *   with the smallest name if several) splits traffic: each Route backend's
 *   weight is shared by the workloads matching its selector in proportion to
 *   their `weight` (default 1); a subset with no workload drops out and the
 *   others share its traffic. Without a Route, shares are the workload weights.
 * - Identities and policy entries are only for workloads on THIS node: the
 *   caller of connect() is always local.
 * - AuthorizationPolicy.ports are service ports: a policy covers the frontends
 *   of those ports (all ports when absent).
 * - Imported resources (federation) never select or get selected across
 *   clusters and are never local to this node; a local Service and its imported
 *   namesakes compile as one global service with affinity (global.ts).
 *
 * Specs come from the log, which validated them; a malformed one is skipped
 * and named in `stats.skipped` rather than crashing every agent of the cluster.
 */

export interface WorkloadRef {
  namespace: string;
  name: string;
  node: string;
  address: string;
  identity: string;
}

/** The cgroup id of a workload's cgroup on this node, or undefined while it does not exist. */
export type CgroupIdOf = (w: WorkloadRef) => bigint | undefined;

/**
 * A made-up, deterministic cgroup id (FNV-1a 64 of `<namespace>.<name>`, top
 * bit set so it can never equal a real cgroup inode number). FOR THE MEMORY
 * BACKEND ONLY: the BPF backend must resolve the real id of the workload's cgroup.
 */
export function fakeCgroupId(w: Pick<WorkloadRef, 'namespace' | 'name'>): bigint {
  // Two 32-bit FNV-1a lanes (different seeds) instead of 64-bit BigInt math: this runs per workload.
  const s = `${w.namespace}.${w.name}`;
  let lo = 0x811c9dc5;
  let hi = 0x050c5d1f;
  for (let i = 0; i < s.length; i++) {
    lo = Math.imul(lo ^ s.charCodeAt(i), 0x01000193);
    hi = Math.imul(hi ^ s.charCodeAt(i), 0x01000193);
  }
  return (BigInt((hi | 0x80000000) >>> 0) << 32n) | BigInt(lo >>> 0);
}

export interface CompileOptions {
  /** Ids to keep (read back from the maps); default: a fresh allocator (ids from 1). */
  ids?: IdAllocator;
  /** Default `fakeCgroupId`, which is only right for the memory backend. */
  cgroupIdOf?: CgroupIdOf;
  /** Soft cap on slots per frontend (exact weights use fewer); default 1024, at most 4096. */
  maxSlotsPerService?: number;
}

export interface CompileStats {
  frontends: number;
  backends: number;
  slots: number;
  identities: number;
  policies: number;
  /** Resources ignored because their spec could not be read, with the reason. */
  skipped: string[];
}

export interface CompiledMaps {
  node: string;
  revision: number;
  maps: MapSet;
  /** The ids these maps use. */
  ids: IdAssignments;
  /** digestMapSet(maps), when the producer keeps it up to date (the incremental compiler). */
  digest?: bigint;
  stats: CompileStats;
}

// Content hash of a slot table: equal tables share a generation, a new table lands beside the old one.
export function generationOf(backendIds: readonly number[]): number {
  let h = 0x811c9dc5;
  for (const id of backendIds) {
    for (let s = 0; s < 32; s += 8) h = Math.imul(h ^ ((id >>> s) & 0xff), 0x01000193);
  }
  return (h ^ (h >>> 16)) & 0xffff;
}

/** Encoded entries of one frontend: its service entry, slot table and policy verdicts. */
export interface FrontendEntries {
  service: [string, string];
  slots: Array<[string, string]>;
  policy: Array<[string, string]>;
}

export function encodeFrontend(
  f: Frontend,
  serviceId: number,
  backendId: (dest: string) => number,
  identityId: (name: string) => number,
): FrontendEntries {
  const table: number[] = [];
  f.dests.forEach((d, i) => {
    if (f.counts[i]! === 0) return;
    const id = backendId(d.key);
    for (let n = 0; n < f.counts[i]!; n++) table.push(id);
  });
  const generation = table.length > 0 ? generationOf(table) : 0;
  return {
    service: [
      codecs.serviceKey.encodeStr({ vip: f.vip, port: f.port, proto: f.proto }),
      codecs.serviceValue.encodeStr({
        service_id: serviceId,
        slot_count: table.length,
        generation,
        flags: f.flags,
      }),
    ],
    slots: table.map((id, slot) => [
      codecs.slotKey.encodeStr({ service_id: serviceId, generation, slot }),
      codecs.slotValue.encodeStr({ backend_id: id }),
    ]),
    policy: [...f.policy].map(([identity, action]) => [
      codecs.policyKey.encodeStr({ service_id: serviceId, identity_id: identityId(identity) }),
      codecs.policyValue.encodeStr({ action }),
    ]),
  };
}

export function encodeBackend(d: Dest, id: number): [string, string] {
  return [codecs.backendKey.encodeStr({ backend_id: id }), codecs.backendValue.encodeStr(d)];
}

/** mesh_identities and mesh_id_names for the local workloads (sorted by key; first cgroup wins). */
export function encodeIdentities(
  local: readonly Workload[],
  cgroupIdOf: CgroupIdOf,
  identityId: (name: string) => number,
): { identities: Array<[string, string]>; names: Array<[string, string]> } {
  const identities: Array<[string, string]> = [];
  const seen = new Set<bigint>();
  for (const w of local) {
    const cgroupId = cgroupIdOf(w);
    if (cgroupId === undefined || seen.has(cgroupId)) continue;
    seen.add(cgroupId);
    identities.push([
      codecs.identityKey.encodeStr({ cgroup_id: cgroupId }),
      codecs.identityValue.encodeStr({ identity_id: identityId(w.identity) }),
    ]);
  }
  const names = [...new Set(local.map((w) => w.identity))].map((name): [string, string] => [
    codecs.idNameKey.encodeStr({ identity_id: identityId(name) }),
    codecs.idNameValue.encodeStr({ name }),
  ]);
  return { identities, names };
}

export function compile(state: MeshState, node: string, opts: CompileOptions = {}): CompiledMaps {
  const cgroupIdOf = opts.cgroupIdOf ?? fakeCgroupId;
  const skipped: string[] = [];
  const index = new WorkloadIndex();
  const services = new Map<string, StoredResource[]>();
  const routes = new Map<string, Set<StoredResource>>();
  const policies = new Map<string, Set<StoredResource>>();
  const local: Workload[] = [];

  for (const [key, r] of state.resources) {
    if (r.kind === 'Service') {
      const g = globalKeyOf(r);
      const members = services.get(g);
      if (members) members.push(r);
      else services.set(g, [r]);
    } else if (r.kind === 'Workload') {
      const w = scopedWorkload(key, r);
      if (!w) {
        skipped.push(`${key}: malformed Workload spec`);
        continue;
      }
      index.add(key, r);
      if (w.node === node && r.origin === undefined) local.push(w);
    } else if (r.kind === 'Route' || r.kind === 'AuthorizationPolicy') {
      const target = targetOf(r);
      if (target) addTo(r.kind === 'Route' ? routes : policies, target, r);
    }
  }
  local.sort((a, b) => (a.key < b.key ? -1 : 1));
  const localIdentities = new Set(local.map((w) => w.identity));
  const localAddrs = new Set(local.map((w) => w.address));
  const maxSlots = maxSlotsOf(opts);

  const frontends: Frontend[] = [];
  const addrs = new Addresses();
  for (const [key, members] of services) {
    try {
      const pols = [...(policies.get(key) ?? [])];
      const route = chooseRoute(routes.get(key));
      const ctx = { addrs, index, route, policies: pols, localIdentities, localAddrs, maxSlots };
      frontends.push(...groupFrontends(members, ctx));
    } catch (err) {
      skipped.push(`Service/${key}: ${(err as Error).message}`);
    }
  }

  // A fork: the caller's allocator is left as it was (this state may never be applied).
  const ids = (opts.ids ?? Ids.empty()).fork();
  const allDests = new Map<string, Dest>();
  // Only destinations that received slots become backends: a zero share writes nothing.
  for (const f of frontends) {
    f.dests.forEach((d, i) => {
      if (f.counts[i]! > 0) allDests.set(d.key, d);
    });
  }
  ids.assignAll(
    'services',
    frontends.map((f) => f.key),
  );
  ids.assignAll('backends', allDests.keys());
  ids.assignAll('identities', [...localIdentities]);

  const maps = emptyMapSet();
  let slots = 0;
  const backendId = (k: string) => ids.backend(k);
  const identityId = (n: string) => ids.identity(n);
  for (const f of frontends) {
    const e = encodeFrontend(f, ids.service(f.key), backendId, identityId);
    maps.mesh_services.set(...e.service);
    for (const [k, v] of e.slots) maps.mesh_slots.set(k, v);
    for (const [k, v] of e.policy) maps.mesh_policy.set(k, v);
    slots += e.slots.length;
  }
  for (const d of allDests.values()) maps.mesh_backends.set(...encodeBackend(d, ids.backend(d.key)));
  const idents = encodeIdentities(local, cgroupIdOf, identityId);
  for (const [k, v] of idents.identities) maps.mesh_identities.set(k, v);
  for (const [k, v] of idents.names) maps.mesh_id_names.set(k, v);

  return {
    node,
    revision: state.revision,
    maps,
    ids: ids.used(),
    stats: {
      frontends: maps.mesh_services.size,
      backends: maps.mesh_backends.size,
      slots,
      identities: maps.mesh_identities.size,
      policies: maps.mesh_policy.size,
      skipped,
    },
  };
}

export function maxSlotsOf(opts: CompileOptions): number {
  return Math.min(opts.maxSlotsPerService ?? 1024, MAX_SLOTS_PER_SERVICE);
}
