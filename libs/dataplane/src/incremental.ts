import type { MeshState, StoredResource } from '@meshplane/domain';
import { u32ToIpv4 } from './codec';
import {
  type CgroupIdOf,
  type CompiledMaps,
  type CompileOptions,
  encodeBackend,
  encodeFrontend,
  encodeIdentities,
  fakeCgroupId,
  maxSlotsOf,
} from './compile';
import {
  Addresses,
  addTo,
  chooseRoute,
  type Dest,
  type Frontend,
  removeFrom,
  sameSet,
  selectorPairs,
  symmetricDiff,
  targetOf,
  type Workload,
  WorkloadIndex,
} from './frontends';
import { globalKeyOf, groupFrontends, scopedWorkload, scopeOf } from './global';
import { emptyAssignments, IdAllocator, type IdKind } from './ids';
import { BE_F_LOCAL, MANAGED_MAPS, type ManagedMapName } from './layout';
import { digestOf, emptyMapSet, entryDigest } from './maps';
import type { TouchedKeys } from './plan';

/*
 * compile() for a running agent: after a full `reset`, each `update` redoes
 * only the Services a batch of changed resources can affect, and reports the
 * map keys it touched, so that compile + plan cost O(change) instead of
 * O(mesh) (10k services: ~0.5 s per revision for a full compile). It yields
 * the same maps as compile() up to ids (incremental.spec.ts checks it):
 *   - reset allocates exactly as compile does (lowest free id, sorted keys);
 *   - later new ids are max+1 and never reuse an id retired in this process,
 *     so no id can come back while the maps may still hold it; a restart
 *     (reset from the maps) compacts.
 * The CompiledMaps it returns is updated IN PLACE by later updates: always
 * the latest desired state (the reconciler snapshots revision and digest
 * with each plan).
 */

type Entry = [ManagedMapName, string];

interface Owned {
  frontends: string[];
  entries: Entry[];
  dests: string[];
}

export interface IncrementalResult {
  desired: CompiledMaps;
  touched: TouchedKeys;
}

export class IncrementalCompiler {
  private desired: CompiledMaps;
  private lo = 0;
  private hi = 0;
  private touched = this.noTouches();
  private readonly cgroupIdOf: CgroupIdOf;
  private readonly maxSlots: number;
  private known = new Map<string, StoredResource>();
  private index = new WorkloadIndex();
  private workloads = new Map<string, Workload>();
  /** Members (by refKey) of each global service `namespace/sourceName`: the unit recompiled. */
  private services = new Map<string, Map<string, StoredResource>>();
  private bySelector = new Map<string, Set<string>>();
  private routes = new Map<string, Set<StoredResource>>();
  private policies = new Map<string, Set<StoredResource>>();
  private local = new Map<string, Workload>();
  private localIdentities = new Set<string>();
  private localAddrs = new Set<string>();
  private owned = new Map<string, Owned>();
  private refs = new Map<string, { count: number; dest: Dest }>();
  /** Destination keys by address (backend flags follow the address: MESH_BE_F_LOCAL). */
  private refsByAddr = new Map<string, Set<string>>();
  /** Backends and frontends that lost a user in this update: collected unless re-added. */
  private orphanDests = new Set<string>();
  private orphanFrontends = new Set<string>();
  private frontendOwner = new Map<string, string>();
  /**
   * Entries of the services being redone, deleted only if the redo does not write them again:
   * most of a service's entries come back unchanged, and then neither the digest nor the
   * touched keys (so neither plan nor map writes) see them.
   */
  private retiring = this.noTouches();
  private skipped = new Map<string, string>();
  private next: Record<IdKind, number> = { services: 1, backends: 1, identities: 1 };
  private allocator: IdAllocator | undefined;

  constructor(
    readonly node: string,
    opts: Omit<CompileOptions, 'ids'> = {},
  ) {
    this.cgroupIdOf = opts.cgroupIdOf ?? fakeCgroupId;
    this.maxSlots = maxSlotsOf(opts);
    this.desired = this.blank(0);
  }

  private blank(revision: number): CompiledMaps {
    const stats = { frontends: 0, backends: 0, slots: 0, identities: 0, policies: 0, skipped: [] };
    return { node: this.node, revision, maps: emptyMapSet(), ids: emptyAssignments(), stats, digest: 0n };
  }

  private noTouches(): Record<ManagedMapName, Set<string>> {
    return Object.fromEntries(MANAGED_MAPS.map((m) => [m, new Set<string>()])) as Record<
      ManagedMapName,
      Set<string>
    >;
  }

  /** Compiles `state` from scratch, with ids from `ids` (read from the maps), like compile(). */
  reset(state: MeshState, ids: IdAllocator): IncrementalResult {
    this.desired = this.blank(state.revision);
    this.lo = this.hi = 0;
    const maps = [
      'known',
      'workloads',
      'services',
      'bySelector',
      'routes',
      'policies',
      'local',
      'owned',
      'refs',
    ] as const;
    for (const f of [
      ...maps,
      'skipped',
      'refsByAddr',
      'frontendOwner',
      'orphanDests',
      'orphanFrontends',
    ] as const)
      this[f].clear();
    this.index = new WorkloadIndex();
    this.localIdentities = new Set();
    this.localAddrs = new Set();
    this.allocator = ids.fork();
    const result = this.update(state, state.resources.keys());
    for (const kind of ['services', 'backends', 'identities'] as const) this.next[kind] = ids.maxId(kind) + 1;
    for (const kind of ['services', 'backends', 'identities'] as const)
      for (const id of this.desired.ids[kind].values()) this.next[kind] = Math.max(this.next[kind], id + 1);
    this.allocator = undefined;
    return result;
  }

  /** Folds the resources named by `changed` (refKeys put or deleted since the last call) into the maps. */
  update(state: MeshState, changed: Iterable<string>): IncrementalResult {
    this.touched = this.noTouches();
    const affected = new Set<string>();
    let localChanged = false;
    for (const key of new Set(changed)) {
      const before = this.known.get(key);
      const after = state.resources.get(key);
      if (before === after) continue;
      this.skipped.delete(key);
      const kind = (after ?? before)!.kind;
      if (kind === 'Service') this.serviceChanged(before, after, affected);
      else if (kind === 'Workload') localChanged = this.workloadChanged(key, after, affected) || localChanged;
      else if (kind === 'Route' || kind === 'AuthorizationPolicy') {
        const sets = kind === 'Route' ? this.routes : this.policies;
        for (const [r, add] of [
          [before, false],
          [after, true],
        ] as const) {
          const target = r && targetOf(r);
          if (!r || !target) continue;
          affected.add(target);
          if (add) addTo(sets, target, r);
          else removeFrom(sets, target, r);
        }
      }
      if (after) this.known.set(key, after);
      else this.known.delete(key);
    }
    if (localChanged) this.localsChanged(affected);
    for (const svc of affected) this.removeService(svc);
    this.addServices([...affected].sort());
    for (const map of MANAGED_MAPS) {
      for (const key of this.retiring[map]) this.del(map, key);
      this.retiring[map].clear();
    }
    this.collectUnused();
    if (localChanged) this.writeIdentities();
    const d = this.desired;
    d.revision = state.revision;
    d.digest = digestOf(this.lo, this.hi);
    d.stats = {
      frontends: d.maps.mesh_services.size,
      backends: d.maps.mesh_backends.size,
      slots: d.maps.mesh_slots.size,
      identities: d.maps.mesh_identities.size,
      policies: d.maps.mesh_policy.size,
      skipped: [...this.skipped.values()],
    };
    return { desired: d, touched: this.touched };
  }

  private serviceChanged(
    before: StoredResource | undefined,
    after: StoredResource | undefined,
    affected: Set<string>,
  ) {
    const r = (after ?? before)!;
    const svc = globalKeyOf(r);
    const key = `Service/${r.namespace}/${r.name}`;
    affected.add(svc);
    // Selector pairs in the Service's scope: an import only selects its own origin's workloads.
    const pairs = (x: StoredResource) => selectorPairs({ ...x, namespace: scopeOf(x) });
    if (before) for (const pair of pairs(before)) removeFrom(this.bySelector, pair, svc);
    let members = this.services.get(svc);
    if (after) {
      if (!members) {
        members = new Map();
        this.services.set(svc, members);
      }
      members.set(key, after);
      for (const pair of pairs(after)) addTo(this.bySelector, pair, svc);
    } else if (members) {
      members.delete(key);
      if (members.size === 0) this.services.delete(svc);
    }
  }

  /** Returns whether this node's own workloads changed. */
  private workloadChanged(key: string, after: StoredResource | undefined, affected: Set<string>): boolean {
    const old = this.workloads.get(key);
    const w = after ? scopedWorkload(key, after) : undefined;
    if (after && !w) this.skipped.set(key, `${key}: malformed Workload spec`);
    for (const x of [old, w]) {
      if (!x) continue;
      // Any Service whose selector shares a label pair with the workload may select it.
      for (const pair of [
        `${x.namespace}\0*`,
        ...Object.entries(x.labels).map(([k, v]) => `${x.namespace}\0${k}=${v}`),
      ])
        for (const svc of this.bySelector.get(pair) ?? []) affected.add(svc);
    }
    if (old) this.index.remove(old);
    if (w) {
      this.index.add(w);
      this.workloads.set(key, w);
    } else this.workloads.delete(key);
    const wasLocal = this.local.has(key);
    // Imported workloads run in another cluster, whatever their node is called there.
    const isLocal = w !== undefined && after?.origin === undefined && w.node === this.node;
    if (isLocal) this.local.set(key, w);
    else this.local.delete(key);
    return wasLocal || isLocal;
  }

  /** Local identities and addresses feed every policy verdict and backend flag: refresh what depends on them. */
  private localsChanged(affected: Set<string>): void {
    const identities = new Set([...this.local.values()].map((w) => w.identity));
    const addrs = new Set([...this.local.values()].map((w) => w.address));
    if (!sameSet(identities, this.localIdentities)) for (const svc of this.policies.keys()) affected.add(svc);
    const flipped = symmetricDiff(addrs, this.localAddrs);
    this.localIdentities = identities;
    this.localAddrs = addrs;
    for (const id of [...identities].sort()) this.id('identities', id);
    if (flipped.size === 0) return;
    for (const address of flipped) {
      for (const key of this.refsByAddr.get(address) ?? []) {
        const ref = this.refs.get(key)!;
        ref.dest = { ...ref.dest, flags: addrs.has(address) ? BE_F_LOCAL : 0 };
        this.set('mesh_backends', ...encodeBackend(ref.dest, this.desired.ids.backends.get(key)!));
      }
    }
  }

  private removeService(svc: string): void {
    const o = this.owned.get(svc);
    if (!o) return;
    for (const [map, key] of o.entries) this.retiring[map].add(key);
    for (const dest of o.dests) if (--this.refs.get(dest)!.count === 0) this.orphanDests.add(dest);
    for (const k of o.frontends) {
      if (this.frontendOwner.get(k) === svc) this.frontendOwner.delete(k);
      this.orphanFrontends.add(k);
    }
    this.owned.delete(svc);
  }

  private addServices(svcs: string[]): void {
    const addrs = new Addresses();
    const built: Array<[string, Frontend[]]> = [];
    for (const svc of svcs) {
      const members = this.services.get(svc);
      this.skipped.delete(`Service/${svc}`);
      if (!members) continue;
      try {
        const ctx = {
          addrs,
          index: this.index,
          route: chooseRoute(this.routes.get(svc)),
          policies: [...(this.policies.get(svc) ?? [])],
          localIdentities: this.localIdentities,
          localAddrs: this.localAddrs,
          maxSlots: this.maxSlots,
        };
        built.push([svc, groupFrontends([...members.values()], ctx)]);
      } catch (err) {
        this.skipped.set(`Service/${svc}`, `Service/${svc}: ${(err as Error).message}`);
      }
    }
    // New ids in sorted key order, as compile() allocates them.
    const frontKeys = built.flatMap(([, fs]) => fs.map((f) => f.key));
    const destKeys = built.flatMap(([, fs]) =>
      fs.flatMap((f) => f.dests.filter((_, i) => f.counts[i]! > 0).map((d) => d.key)),
    );
    for (const k of [...new Set(frontKeys)].sort()) this.id('services', k);
    for (const k of [...new Set(destKeys)].sort()) this.id('backends', k);
    const ids = this.desired.ids;
    for (const [svc, fs] of built) {
      const o: Owned = { frontends: [], entries: [], dests: [] };
      for (const f of fs) {
        const e = encodeFrontend(
          f,
          ids.services.get(f.key)!,
          (k) => ids.backends.get(k)!,
          (n) => ids.identities.get(n)!,
        );
        o.frontends.push(f.key);
        this.frontendOwner.set(f.key, svc);
        for (const [map, list] of [
          ['mesh_services', [e.service]],
          ['mesh_slots', e.slots],
          ['mesh_policy', e.policy],
        ] as const)
          for (const [k, v] of list) {
            this.set(map, k, v);
            o.entries.push([map, k]);
          }
        f.dests.forEach((d, i) => {
          if (f.counts[i]! === 0) return;
          o.dests.push(d.key);
          const ref = this.refs.get(d.key);
          if (ref) ref.count++;
          else {
            this.refs.set(d.key, { count: 1, dest: d });
            addTo(this.refsByAddr, u32ToIpv4(d.addr), d.key);
          }
          this.set('mesh_backends', ...encodeBackend(d, ids.backends.get(d.key)!));
        });
      }
      this.owned.set(svc, o);
    }
  }

  /** Backends no slot uses and frontends no service owns lose their entries and ids. */
  private collectUnused(): void {
    const ids = this.desired.ids;
    for (const key of this.orphanDests) {
      const ref = this.refs.get(key);
      if (!ref || ref.count > 0) continue;
      this.del('mesh_backends', encodeBackend(ref.dest, ids.backends.get(key)!)[0]);
      ids.backends.delete(key);
      this.refs.delete(key);
      removeFrom(this.refsByAddr, u32ToIpv4(ref.dest.addr), key);
    }
    this.orphanDests.clear();
    for (const k of this.orphanFrontends) if (!this.frontendOwner.has(k)) ids.services.delete(k);
    this.orphanFrontends.clear();
  }

  private writeIdentities(): void {
    const ids = this.desired.ids;
    for (const name of [...ids.identities.keys()])
      if (!this.localIdentities.has(name)) ids.identities.delete(name);
    const local = [...this.local.values()].sort((a, b) => (a.key < b.key ? -1 : 1));
    const { identities, names } = encodeIdentities(local, this.cgroupIdOf, (n) => ids.identities.get(n)!);
    for (const [map, want] of [
      ['mesh_identities', new Map(identities)],
      ['mesh_id_names', new Map(names)],
    ] as const) {
      for (const k of [...this.desired.maps[map].keys()]) if (!want.has(k)) this.del(map, k);
      for (const [k, v] of want) this.set(map, k, v);
    }
  }

  /** The id of `key`, allocating one if new: through the reset allocator, later max+1. */
  private id(kind: IdKind, key: string): number {
    const ids = this.desired.ids[kind];
    let id = ids.get(key);
    if (id !== undefined) return id;
    if (this.allocator)
      id =
        kind === 'services'
          ? this.allocator.service(key)
          : kind === 'backends'
            ? this.allocator.backend(key)
            : this.allocator.identity(key);
    else id = this.next[kind]++;
    ids.set(key, id);
    return id;
  }

  private set(map: ManagedMapName, key: string, value: string): void {
    this.retiring[map].delete(key);
    const m = this.desired.maps[map];
    const old = m.get(key);
    if (old === value) return;
    if (old !== undefined) this.digest(map, key, old, -1);
    m.set(key, value);
    this.digest(map, key, value, 1);
    this.touched[map].add(key);
  }

  private del(map: ManagedMapName, key: string): void {
    const m = this.desired.maps[map];
    const old = m.get(key);
    if (old === undefined) return;
    this.digest(map, key, old, -1);
    m.delete(key);
    this.touched[map].add(key);
  }

  private digest(map: ManagedMapName, key: string, value: string, sign: 1 | -1): void {
    const [a, b] = entryDigest(map, key, value);
    this.lo = (this.lo + sign * a) >>> 0;
    this.hi = (this.hi + sign * b) >>> 0;
  }
}
