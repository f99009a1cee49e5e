import { type MeshState, parseRefKey, type StoredResource } from '@meshplane/domain';
import { type Bag, bagAdd, bagRemove, bagValues } from './bag';
import { ipv4OrUndefined } from './codec';
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
import { DesiredWriter } from './desired-writer';
import {
  Addresses,
  addTo,
  anyPairKey,
  chooseRoute,
  type Frontend,
  pairKey,
  removeFrom,
  sameLabels,
  sameSet,
  selectorPairs,
  symmetricDiff,
  targetOf,
  type Workload,
  WorkloadIndex,
} from './frontends';
import { globalKeyOf, groupFrontends, scopedWorkload, scopeOf } from './global';
import type { IdAllocator, IdKind } from './ids';
import { BE_F_LOCAL, MANAGED_MAPS } from './layout';
import {
  BackendRefs,
  destCounts,
  destOfKey,
  emptyOwnedParts,
  forEachOwned,
  heldDestId,
  type Owned,
  packOwned,
  reuseKeys,
} from './owned';
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
 *
 * Memory: every agent holds one for the whole mesh (a simulation worker holds
 * 50), and GC pauses grow with what it retains. So the indexes point at the
 * state's own resource objects instead of parsed copies, one-element buckets
 * are Bags, a service's entries are one packed array (owned.ts), and what can
 * be read back from a key (a backend's fields) is not stored beside it.
 */

const OWNED_MAP = { services: 'mesh_services', slots: 'mesh_slots', policy: 'mesh_policy' } as const;

export interface IncrementalResult {
  desired: CompiledMaps;
  /** Keys whose entries were written or deleted (after a reset: every key of the maps, as arrays). */
  touched: TouchedKeys;
}

export class IncrementalCompiler {
  private readonly out: DesiredWriter;
  private readonly cgroupIdOf: CgroupIdOf;
  private readonly maxSlots: number;
  /** Routes, policies and malformed Workloads as last seen (the other kinds: see `before`). */
  private known = new Map<string, StoredResource>();
  private index = new WorkloadIndex();
  /** Members of each global service `namespace/sourceName`: the unit recompiled. */
  private services = new Map<string, Bag<StoredResource>>();
  /** Global services by the label pairs of their selectors. */
  private bySelector = new Map<string, Bag<string>>();
  // Services indexed under an (invalid) empty selector's key: while none is, a workload change
  // skips that lookup (a string and a miss in bySelector per changed workload).
  private emptySelectors = 0;
  private routes = new Map<string, Set<StoredResource>>();
  private policies = new Map<string, Set<StoredResource>>();
  private local = new Map<string, Workload>();
  private localIdentities = new Set<string>();
  private localAddrs = new Set<string>();
  private owned = new Map<string, Owned>();
  private refs = new BackendRefs();
  /** Backends and frontends that lost a user in this update: collected unless re-added. */
  private orphanDests = new Set<string>();
  private orphanFrontends = new Set<string>();
  private frontendOwner = new Map<string, string>();
  private skipped = new Map<string, string>();
  private next: Record<IdKind, number> = { services: 1, backends: 1, identities: 1 };
  private allocator: IdAllocator | undefined;

  constructor(
    readonly node: string,
    opts: Omit<CompileOptions, 'ids'> = {},
  ) {
    this.cgroupIdOf = opts.cgroupIdOf ?? fakeCgroupId;
    this.maxSlots = maxSlotsOf(opts);
    this.out = new DesiredWriter(node);
  }

  private get desired(): CompiledMaps {
    return this.out.desired;
  }

  /** Compiles `state` from scratch, with ids from `ids` (read from the maps), like compile(). */
  reset(state: MeshState, ids: IdAllocator): IncrementalResult {
    this.out.clear(state.revision);
    const indexes = [
      'known',
      'services',
      'bySelector',
      'routes',
      'policies',
      'local',
      'owned',
      'refs',
    ] as const;
    for (const f of [...indexes, 'skipped', 'frontendOwner', 'orphanDests', 'orphanFrontends'] as const)
      this[f].clear();
    this.index = new WorkloadIndex();
    this.emptySelectors = 0;
    this.localIdentities = new Set();
    this.localAddrs = new Set();
    this.allocator = ids.fork();
    this.out.tracking = false;
    let result: IncrementalResult;
    try {
      result = this.update(state, state.resources.keys());
    } finally {
      this.out.tracking = true;
    }
    // A snapshot in arrays: Sets of every key would cost more than the maps' own entries.
    const maps = this.desired.maps;
    result.touched = Object.fromEntries(MANAGED_MAPS.map((m) => [m, [...maps[m].keys()]]));
    for (const kind of ['services', 'backends', 'identities'] as const) this.next[kind] = ids.maxId(kind) + 1;
    for (const kind of ['services', 'backends', 'identities'] as const)
      for (const id of this.desired.ids[kind].values()) this.next[kind] = Math.max(this.next[kind], id + 1);
    this.allocator = undefined;
    return result;
  }

  /**
   * Folds the resources named by `changed` (refKeys put or deleted since the last call) into the
   * maps. `refreshIdentities`: rewrite the local identities even if no local workload changed in
   * a way that needs it (a workload cgroup's id changed, so cgroupIdOf answers differently).
   */
  update(
    state: MeshState,
    changed: Iterable<string>,
    opts: { refreshIdentities?: boolean } = {},
  ): IncrementalResult {
    const touched = this.out.begin();
    const affected = new Set<string>();
    let localChanged = false;
    for (const key of new Set(changed)) {
      const after = state.resources.get(key);
      const before = this.before(key);
      if (before === after) continue;
      this.skipped.delete(key);
      const kind = (after ?? before)!.kind;
      if (kind === 'Service') this.serviceChanged(before, after, affected);
      else if (kind === 'Workload')
        localChanged = this.workloadChanged(key, before, after, affected) || localChanged;
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
      const indexed = kind === 'Service' || (kind === 'Workload' && !this.skipped.has(key));
      if (after && !indexed) this.known.set(key, after);
      else this.known.delete(key);
    }
    if (localChanged) this.localsChanged(affected);
    const previous = new Map<string, Owned>();
    for (const svc of affected) this.removeService(svc, previous);
    this.addServices([...affected].sort(), previous);
    // Services gone, or skipped now: everything they held is released.
    for (const [svc, old] of previous) if (!this.owned.has(svc)) this.release(svc, old, destCounts(old), []);
    this.out.dropRetired();
    this.collectUnused();
    if (localChanged || opts.refreshIdentities) this.writeIdentities();
    return { desired: this.out.finish(state.revision, [...this.skipped.values()]), touched };
  }

  /**
   * The resource `key` named when last folded in. Services and well-formed
   * Workloads are found where they are indexed (a map of every resource of the
   * mesh would double what the state already holds), the rest in `known`.
   */
  private before(key: string): StoredResource | undefined {
    const kind = key.slice(0, key.indexOf('/'));
    if (kind === 'Workload') return this.index.get(key) ?? this.known.get(key);
    if (kind !== 'Service') return this.known.get(key);
    const ref = parseRefKey(key);
    for (const r of bagValues(this.services.get(globalKeyOf(ref))))
      if (r.name === ref.name && r.namespace === ref.namespace) return r;
    return undefined;
  }

  private serviceChanged(
    before: StoredResource | undefined,
    after: StoredResource | undefined,
    affected: Set<string>,
  ) {
    const r = (after ?? before)!;
    const svc = globalKeyOf(r);
    affected.add(svc);
    // Selector pairs in the Service's scope: an import only selects its own origin's workloads.
    const pairs = (x: StoredResource) => selectorPairs({ ...x, namespace: scopeOf(x) });
    if (before) {
      const ps = pairs(before);
      if (ps[0] === anyPairKey(scopeOf(before))) this.emptySelectors--;
      for (const pair of ps) bagRemove(this.bySelector, pair, svc);
      bagRemove(this.services, svc, before);
    }
    if (after) {
      const ps = pairs(after);
      if (ps[0] === anyPairKey(scopeOf(after))) this.emptySelectors++;
      for (const pair of ps) bagAdd(this.bySelector, pair, svc);
      bagAdd(this.services, svc, after);
    }
  }

  /** Returns whether this node's own workloads changed in what identities and local addresses read. */
  private workloadChanged(
    key: string,
    before: StoredResource | undefined,
    after: StoredResource | undefined,
    affected: Set<string>,
  ): boolean {
    const old = before ? scopedWorkload(key, before) : undefined;
    const w = after ? scopedWorkload(key, after) : undefined;
    if (after && !w) this.skipped.set(key, `${key}: malformed Workload spec`);
    // The same labels in the same scope select the same Services: one pass is enough.
    const same = old && w && old.namespace === w.namespace && sameLabels(old.labels, w.labels);
    for (const x of same ? [w] : [old, w]) {
      if (!x) continue;
      // Any Service whose selector shares a label pair with the workload may select it.
      for (const k in x.labels)
        for (const svc of bagValues(this.bySelector.get(pairKey(x.namespace, k, x.labels[k]))))
          affected.add(svc);
      if (this.emptySelectors > 0)
        for (const svc of bagValues(this.bySelector.get(anyPairKey(x.namespace)))) affected.add(svc);
    }
    if (after && w) this.index.add(key, after, w);
    else this.index.remove(key);
    // Imported workloads run in another cluster, whatever their node is called there.
    const isLocal = w !== undefined && after?.origin === undefined && w.node === this.node;
    // `local` holds exactly the workloads for which this held when they were folded in, so
    // whether the old one was local is read off `before`: most changes are to other nodes'
    // workloads, and they need no lookup in `local` at all.
    const was = old !== undefined && before?.origin === undefined && old.node === this.node ? old : undefined;
    if (isLocal) this.local.set(key, w);
    else if (was) this.local.delete(key);
    // Identities, their cgroups and the local addresses read only these (not labels or weight).
    if (was && isLocal) return was.identity !== w.identity || was.address !== w.address;
    return was !== undefined || isLocal;
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
    for (const address of flipped) {
      const addr = ipv4OrUndefined(address);
      if (addr === undefined) continue; // no Service can use it (its compile fails)
      for (const key of this.refs.at(addr)) this.writeBackend(key);
    }
  }

  /** A backend's entry: its fields are in its key, its flag in whether its address is local. */
  private writeBackend(key: string): void {
    const local = this.localAddrs.has(key.slice(0, key.lastIndexOf(':')));
    this.out.set(
      'mesh_backends',
      ...encodeBackend(destOfKey(key, local ? BE_F_LOCAL : 0), this.backendId(key)),
    );
  }

  private backendId(key: string): number {
    return this.desired.ids.backends.get(key)!;
  }

  private removeService(svc: string, previous: Map<string, Owned>): void {
    const packed = this.owned.get(svc);
    if (!packed) return;
    previous.set(svc, packed);
    // Destinations and frontends are released once the service is rebuilt (release): most
    // come back, and their counts and owners need not move.
    forEachOwned(packed, (part, key) => {
      if (part !== 'dests' && part !== 'frontends') this.out.retire(OWNED_MAP[part], key);
    });
    this.owned.delete(svc);
  }

  /**
   * Releases what `svc` held before this update (`old`) and no longer does: the references in
   * `dests` (the old destinations' counts, less those the rebuild used again) and the frontends
   * not in `fronts`. Unused ones are collected at the end of the update.
   */
  private release(svc: string, old: Owned, dests: Map<string, number>, fronts: readonly string[]): void {
    for (const [key, n] of dests)
      for (let i = 0; i < n; i++) if (this.refs.release(key)) this.orphanDests.add(key);
    forEachOwned(old, (part, key) => {
      if (part !== 'frontends' || fronts.includes(key)) return;
      if (this.frontendOwner.get(key) === svc) this.frontendOwner.delete(key);
      this.orphanFrontends.add(key);
    });
  }

  /** `previous`: what each service owned before this update, whose key strings are kept (see reuseKeys). */
  private addServices(svcs: string[], previous: ReadonlyMap<string, Owned>): void {
    const addrs = new Addresses();
    const built: Array<[string, Frontend[]]> = [];
    for (const svc of svcs) {
      const members = this.services.get(svc);
      this.skipped.delete(`Service/${svc}`);
      if (members === undefined) continue;
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
        built.push([svc, groupFrontends([...bagValues(members)], ctx)]);
      } catch (err) {
        this.skipped.set(`Service/${svc}`, `Service/${svc}: ${(err as Error).message}`);
      }
    }
    // New ids in sorted key order, as compile() allocates them (most keys have theirs already).
    const ids = this.desired.ids;
    const newFronts = new Set<string>();
    const newDests = new Set<string>();
    for (const [svc, fs] of built) {
      const before = previous.get(svc);
      for (const f of fs) {
        if (!ids.services.has(f.key)) newFronts.add(f.key);
        f.dests.forEach((d, i) => {
          if (f.counts[i]! === 0 || (before && heldDestId(before, d.key) !== undefined)) return;
          if (!ids.backends.has(d.key)) newDests.add(d.key);
        });
      }
    }
    for (const k of [...newFronts].sort()) this.id('services', k);
    for (const k of [...newDests].sort()) this.id('backends', k);
    for (const [svc, fs] of built) {
      const o = emptyOwnedParts();
      const before = previous.get(svc);
      // The destinations the service held, by count: those it uses again keep their references.
      const held = before ? destCounts(before) : undefined;
      // A held destination's id is in `before` (see Owned), a lookup in ids.backends otherwise.
      const backendId = (k: string) => (before && heldDestId(before, k)) ?? ids.backends.get(k)!;
      for (const f of fs) {
        const e = encodeFrontend(f, ids.services.get(f.key)!, backendId, (n) => ids.identities.get(n)!);
        o.frontends.push(f.key);
        this.frontendOwner.set(f.key, svc);
        this.out.set('mesh_services', ...e.service);
        o.services.push(e.service[0]);
        for (const [k, v] of e.slots) {
          this.out.set('mesh_slots', k, v);
          o.slots.push(k);
        }
        for (const [k, v] of e.policy) {
          this.out.set('mesh_policy', k, v);
          o.policy.push(k);
        }
        f.dests.forEach((d, i) => {
          if (f.counts[i]! === 0) return;
          o.dests.push(d.key);
          o.destIds.push(backendId(d.key));
          const n = held?.get(d.key) ?? 0;
          if (n > 0) {
            held!.set(d.key, n - 1);
            return; // held before this update: its reference stands
          }
          // A destination some table already used keeps its entry (its fields are in its key,
          // its flag is rewritten by localsChanged): only a new one is encoded and written.
          if (this.refs.acquire(d.key, d.addr))
            this.out.set('mesh_backends', ...encodeBackend(d, backendId(d.key)));
        });
      }
      if (before) this.release(svc, before, held!, o.frontends);
      this.owned.set(svc, packOwned(reuseKeys(o, previous.get(svc))));
    }
  }

  /** Backends no slot uses and frontends no service owns lose their entries and ids. */
  private collectUnused(): void {
    const ids = this.desired.ids;
    for (const key of this.orphanDests) {
      if (!this.refs.has(key) || this.refs.inUse(key)) continue;
      const dest = destOfKey(key, 0);
      this.out.del('mesh_backends', encodeBackend(dest, this.backendId(key))[0]);
      ids.backends.delete(key);
      this.refs.drop(key, dest.addr);
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
      for (const k of [...this.desired.maps[map].keys()]) if (!want.has(k)) this.out.del(map, k);
      for (const [k, v] of want) this.out.set(map, k, v);
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
}
