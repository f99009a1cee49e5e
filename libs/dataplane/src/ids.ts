import { codecs, protoName, u32ToIpv4 } from './codec';
import type { MapSet } from './maps';

/*
 * Stable numeric ids, persisted in the maps themselves (Cilium's
 * ResetAndRestore): a frontend's service id is read back from mesh_services,
 * a backend's id from mesh_backends, an identity's id from mesh_id_names. So
 * ids survive agent restarts, and an object that did not change keeps its id
 * (existing connections and per-id entries stay valid).
 *
 * New ids: the lowest id >= 1 that appears NOWHERE in the maps being replaced
 * (not even in orphan slots or policy entries). An id freed by a plan can only
 * be reused by a later plan, after the deletes ran, so one plan never writes
 * a new object under a key that a half-deleted old object still uses.
 * Allocation runs in sorted key order inside `compile`, so for the same maps
 * and state it is deterministic.
 */

/** `vip:port/PROTO`: one frontend (a port of a Service). */
export function frontendKey(vip: number, port: number, proto: number): string {
  return `${u32ToIpv4(vip)}:${port}/${protoName(proto)}`;
}

/** `addr:port/PROTO`: one backend destination. */
export function backendKey(addr: number, port: number, proto: number): string {
  return `${u32ToIpv4(addr)}:${port}/${protoName(proto)}`;
}

/** The ids a compiled map set uses, by the key each id stands for. */
export interface IdAssignments {
  services: Map<string, number>;
  backends: Map<string, number>;
  identities: Map<string, number>;
}

export function emptyAssignments(): IdAssignments {
  return { services: new Map(), backends: new Map(), identities: new Map() };
}

export type IdKind = keyof IdAssignments;

// One kind of id for one compile: the ids the maps hold (shared, read-only) plus this compile's new ones.
class IdSpace {
  private next = 1;
  private readonly added = new Map<string, number>();
  private readonly addedIds = new Set<number>();
  constructor(
    private readonly base: ReadonlyMap<string, number>,
    private readonly baseIds: ReadonlySet<number>,
  ) {}

  has(key: string): boolean {
    return this.base.has(key) || this.added.has(key);
  }

  /** The largest id in use or reserved (0 when none). */
  max(): number {
    let m = 0;
    for (const id of this.baseIds) if (id > m) m = id;
    for (const id of this.addedIds) if (id > m) m = id;
    return m;
  }

  get(key: string): number {
    const have = this.base.get(key) ?? this.added.get(key);
    if (have !== undefined) return have;
    while (this.baseIds.has(this.next) || this.addedIds.has(this.next)) this.next++;
    if (this.next > 0xffffffff) throw new RangeError('id space exhausted');
    const id = this.next++;
    this.addedIds.add(id);
    this.added.set(key, id);
    return id;
  }
}

type Bases = Record<IdKind, { byKey: Map<string, number>; ids: Set<number> }>;

/**
 * Hands out ids during one compile. Built from what the maps hold
 * (`fromMaps`), or from the assignments of the last map set that was fully
 * applied (`fromAssignments`: the same answer without decoding every entry).
 */
export class IdAllocator {
  private readonly spaces: Record<IdKind, IdSpace>;
  private readonly assigned: IdAssignments = emptyAssignments();

  private constructor(private readonly bases: Bases) {
    const space = (k: IdKind) => new IdSpace(bases[k].byKey, bases[k].ids);
    this.spaces = {
      services: space('services'),
      backends: space('backends'),
      identities: space('identities'),
    };
  }

  private static build(known: IdAssignments, reserved: Record<IdKind, Set<number>>): IdAllocator {
    const base = (k: IdKind) => {
      const ids = new Set(reserved[k]);
      for (const id of known[k].values()) ids.add(id);
      return { byKey: new Map(known[k]), ids };
    };
    return new IdAllocator({
      services: base('services'),
      backends: base('backends'),
      identities: base('identities'),
    });
  }

  /**
   * A fresh allocator over the same known ids: `compile` works on a fork, so
   * ids it hands out for a state that is never applied do not stick.
   */
  fork(): IdAllocator {
    return new IdAllocator(this.bases);
  }

  static empty(): IdAllocator {
    return IdAllocator.build(emptyAssignments(), {
      services: new Set(),
      backends: new Set(),
      identities: new Set(),
    });
  }

  static fromAssignments(a: IdAssignments): IdAllocator {
    return IdAllocator.build(a, { services: new Set(), backends: new Set(), identities: new Set() });
  }

  /** Re-reads every id the maps hold; conflicting claims (only after hand edits) keep the first. */
  static fromMaps(maps: MapSet): IdAllocator {
    const known = emptyAssignments();
    const reserved = {
      services: new Set<number>(),
      backends: new Set<number>(),
      identities: new Set<number>(),
    };
    const claim = (kind: IdKind, key: string, id: number) => {
      if (!known[kind].has(key) && !reserved[kind].has(id)) known[kind].set(key, id);
      reserved[kind].add(id);
    };
    for (const [k, v] of maps.mesh_services) {
      const key = codecs.serviceKey.decodeStr(k);
      claim(
        'services',
        frontendKey(key.vip, key.port, key.proto),
        codecs.serviceValue.decodeStr(v).service_id,
      );
    }
    for (const [k, v] of maps.mesh_backends) {
      const b = codecs.backendValue.decodeStr(v);
      claim('backends', backendKey(b.addr, b.port, b.proto), codecs.backendKey.decodeStr(k).backend_id);
    }
    for (const [k, v] of maps.mesh_id_names) {
      claim('identities', codecs.idNameValue.decodeStr(v).name, codecs.idNameKey.decodeStr(k).identity_id);
    }
    // Ids that only orphans still use are reserved, never reassigned in this round.
    for (const [k, v] of maps.mesh_slots) {
      reserved.services.add(codecs.slotKey.decodeStr(k).service_id);
      reserved.backends.add(codecs.slotValue.decodeStr(v).backend_id);
    }
    for (const k of maps.mesh_policy.keys()) {
      const p = codecs.policyKey.decodeStr(k);
      reserved.services.add(p.service_id);
      reserved.identities.add(p.identity_id);
    }
    for (const v of maps.mesh_identities.values())
      reserved.identities.add(codecs.identityValue.decodeStr(v).identity_id);
    return IdAllocator.build(known, reserved);
  }

  /**
   * Assigns ids to every key: known keys keep theirs, new keys are allocated in
   * sorted order, so the result does not depend on the order keys were met in.
   */
  assignAll(kind: IdKind, keys: Iterable<string>): void {
    const fresh: string[] = [];
    for (const key of keys) {
      if (this.spaces[kind].has(key)) this.take(kind, key);
      else fresh.push(key);
    }
    fresh.sort();
    for (const key of fresh) this.take(kind, key);
  }

  /** The largest id of a kind in use or reserved: where a monotonic allocator continues. */
  maxId(kind: IdKind): number {
    return this.spaces[kind].max();
  }

  service(frontend: string): number {
    return this.take('services', frontend);
  }

  backend(dest: string): number {
    return this.take('backends', dest);
  }

  identity(name: string): number {
    return this.take('identities', name);
  }

  /** Only the ids handed out through this allocator (what the compiled maps use). */
  used(): IdAssignments {
    return this.assigned;
  }

  private take(kind: IdKind, key: string): number {
    const id = this.spaces[kind].get(key);
    this.assigned[kind].set(key, id);
    return id;
  }
}
