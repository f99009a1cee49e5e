import { type Bag, bagAdd, bagRemove, bagValues } from './bag';
import { ipv4ToU32, protoNumber } from './codec';
import type { Dest } from './frontends';

/*
 * The incremental compiler's per-service and per-backend bookkeeping, sized
 * for 10k+ services per agent (and 50 agents per simulation worker): flat
 * exact-size arrays and plain counts instead of objects, tuples and Sets.
 */

/**
 * What one global service wrote, to retract when it is redone, packed in one
 * exact-size array: `[nFrontends, nSlots, nPolicy, nDests, ...frontend keys,
 * ...mesh_services keys (one per frontend), ...mesh_slots keys,
 * ...mesh_policy keys, ...destination keys, ...their backend ids]`.
 *
 * The backend ids ride along because a destination the service held keeps its id (the
 * service's reference keeps it from being collected): when the service is redone, its
 * destinations' ids are read here instead of in the id map of every backend of the mesh,
 * a lookup that misses the cache when 50 agents share a thread.
 */
export type Owned = readonly (string | number)[];

export interface OwnedParts {
  frontends: string[];
  services: string[];
  slots: string[];
  policy: string[];
  dests: string[];
  /** The backend id of each destination, in the same order. */
  destIds: number[];
}

const HEADER = 4;

export function emptyOwnedParts(): OwnedParts {
  return { frontends: [], services: [], slots: [], policy: [], dests: [], destIds: [] };
}

export function packOwned(p: OwnedParts): Owned {
  if (p.services.length !== p.frontends.length) throw new RangeError('one mesh_services key per frontend');
  if (p.destIds.length !== p.dests.length) throw new RangeError('one backend id per destination');
  const parts = [p.frontends, p.services, p.slots, p.policy, p.dests, p.destIds];
  // Exact size: a literal with spreads grows like push (up to +50% spare slots).
  const out = new Array<string | number>(HEADER + parts.reduce((n, a) => n + a.length, 0));
  out[0] = p.frontends.length;
  out[1] = p.slots.length;
  out[2] = p.policy.length;
  out[3] = p.dests.length;
  let i = HEADER;
  for (const part of parts) for (const x of part) out[i++] = x;
  return out;
}

/** Where the keys end (the destinations' ids follow). */
function keysEnd(o: Owned): number {
  return o.length - (o[3] as number);
}

/**
 * `parts` with each key that `old` holds too replaced by old's string (equal text, the older
 * object). A redone service writes mostly the keys it had; its fresh strings would be kept for
 * as long as the service is, surviving the young generation into old space for every change of
 * every agent, while the old ones become garbage there. In place; returns `parts`.
 */
export function reuseKeys(parts: OwnedParts, old: Owned | undefined): OwnedParts {
  if (!old) return parts;
  const end = keysEnd(old);
  // A service's few frontends, slots and destinations: a scan beats building an index, up to a point.
  let index: Map<string, string> | undefined;
  if (end > HEADER + 32) {
    index = new Map();
    for (let j = HEADER; j < end; j++) index.set(old[j] as string, old[j] as string);
  }
  for (const part of [parts.frontends, parts.services, parts.slots, parts.policy, parts.dests])
    for (let i = 0; i < part.length; i++) {
      const key = part[i]!;
      if (index) {
        part[i] = index.get(key) ?? key;
        continue;
      }
      for (let j = HEADER; j < end; j++)
        if (old[j] === key) {
          part[i] = old[j] as string;
          break;
        }
    }
  return parts;
}

export function unpackOwned(o: Owned): OwnedParts {
  const [nFrontends, nSlots, nPolicy, nDests] = o as [number, number, number, number];
  let at = HEADER;
  const take = <T>(n: number) => {
    const part = o.slice(at, at + n) as T[];
    at += n;
    return part;
  };
  return {
    frontends: take(nFrontends),
    services: take(nFrontends),
    slots: take(nSlots),
    policy: take(nPolicy),
    dests: take(nDests),
    destIds: take(nDests),
  };
}

/** The backend id `o` recorded for destination `key`, if the service held it. */
export function heldDestId(o: Owned, key: string): number | undefined {
  const end = keysEnd(o);
  const n = o[3] as number;
  for (let j = end - n; j < end; j++) if (o[j] === key) return o[j + n] as number;
  return undefined;
}

export type OwnedPart = Exclude<keyof OwnedParts, 'destIds'>;

/** Each key of `o` with the part it belongs to, in packing order (unpackOwned without the arrays). */
export function forEachOwned(o: Owned, visit: (part: OwnedPart, key: string) => void): void {
  const [nFrontends, nSlots, nPolicy] = o as [number, number, number];
  const frontendsEnd = HEADER + nFrontends;
  const servicesEnd = frontendsEnd + nFrontends;
  const slotsEnd = servicesEnd + nSlots;
  const policyEnd = slotsEnd + nPolicy;
  const end = keysEnd(o);
  for (let i = HEADER; i < end; i++) {
    const part =
      i < frontendsEnd
        ? 'frontends'
        : i < servicesEnd
          ? 'services'
          : i < slotsEnd
            ? 'slots'
            : i < policyEnd
              ? 'policy'
              : 'dests';
    visit(part, o[i] as string);
  }
}

/** How many times each destination occurs in `o` (a service's frontends may share one). */
export function destCounts(o: Owned): Map<string, number> {
  const counts = new Map<string, number>();
  forEachOwned(o, (part, key) => {
    if (part === 'dests') counts.set(key, (counts.get(key) ?? 0) + 1);
  });
  return counts;
}

/** A destination key `addr:port/PROTO` (frontendsOf's format) as the fields of its mesh_backends value. */
export function destOfKey(key: string, flags: number): Dest {
  const colon = key.lastIndexOf(':');
  const slash = key.indexOf('/', colon);
  return {
    key,
    addr: ipv4ToU32(key.slice(0, colon)),
    port: Number(key.slice(colon + 1, slash)),
    proto: protoNumber(key.slice(slash + 1)),
    flags,
    // Not part of the mesh_backends entry (slot counts carry the weights).
    weight: { num: 0n, den: 1n },
  };
}

/**
 * How many slot tables use each destination (a backend lives while any does),
 * and destinations by address (a backend's flags follow its address).
 */
export class BackendRefs {
  private readonly counts = new Map<string, number>();
  private readonly byAddr = new Map<number, Bag<string>>();

  /** One more user of `dest`; true when it had none (a new backend). */
  acquire(dest: string, addr: number): boolean {
    const n = this.counts.get(dest);
    this.counts.set(dest, (n ?? 0) + 1);
    if (n !== undefined) return false;
    bagAdd(this.byAddr, addr, dest);
    return true;
  }

  /** One user fewer; true when none is left (the caller collects it unless it is acquired again). */
  release(dest: string): boolean {
    const n = this.counts.get(dest)! - 1;
    this.counts.set(dest, n);
    return n === 0;
  }

  /** Whether `dest` still has users (false too once it was dropped). */
  inUse(dest: string): boolean {
    return (this.counts.get(dest) ?? 0) > 0;
  }

  has(dest: string): boolean {
    return this.counts.has(dest);
  }

  drop(dest: string, addr: number): void {
    this.counts.delete(dest);
    bagRemove(this.byAddr, addr, dest);
  }

  at(addr: number): Iterable<string> {
    return bagValues(this.byAddr.get(addr));
  }

  clear(): void {
    this.counts.clear();
    this.byAddr.clear();
  }
}
