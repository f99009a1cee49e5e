import type { StoredResource } from '@meshplane/domain';
import { type Bag, bagAdd, bagRemove, bagSize, bagValues } from './bag';
import { ipv4ToU32, protoName, protoNumber } from './codec';
import type { WorkloadRef } from './compile';
import {
  ACTION_ALLOW,
  ACTION_DENY,
  BE_F_LOCAL,
  MAX_SLOTS_PER_SERVICE,
  SVC_F_ALLOW,
  SVC_F_DENY,
} from './layout';
import { slotCounts, type Weight } from './weights';

/*
 * The resource side of compile: which workloads a Service selects, their
 * weighted shares per port (Route subsets, workload weights), and the policy
 * verdicts of each frontend. No ids and no bytes here; compile.ts encodes.
 */

export interface Workload extends WorkloadRef {
  key: string;
  labels: Record<string, string>;
  weight: number;
}

export interface Dest {
  key: string;
  addr: number;
  port: number;
  proto: number;
  flags: number;
  weight: Weight;
}

export interface Frontend {
  key: string;
  vip: number;
  port: number;
  proto: number;
  flags: number;
  dests: Dest[];
  counts: number[];
  policy: Map<string, number>;
}

export const str = (v: unknown): v is string => typeof v === 'string';
export const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export function matches(labels: Record<string, string>, selector: Record<string, unknown>): boolean {
  for (const k in selector) if (labels[k] !== selector[k]) return false;
  return true;
}

/** What a selector reads of a workload and what its destinations are made of. */
export type Candidate = Pick<Workload, 'address' | 'labels' | 'weight'>;

/** The index scope of a resource: its namespace, or `<namespace>@<origin>` for an import. */
export function scopeOf(r: { namespace: string; origin?: string }): string {
  return r.origin === undefined ? r.namespace : `${r.namespace}@${r.origin}`;
}

/**
 * Well-formed Workload resources by refKey, and their refKeys by `scope\0key=value` label pair
 * for selector lookups. It holds the state's own resource objects (no parsed copies: an agent
 * indexes every workload of the mesh) and parses the few a selector picks. The label buckets
 * hold keys, not objects, so a new spec with the same labels (a weight, an address) replaces
 * one entry and leaves the buckets alone.
 */
export class WorkloadIndex {
  private readonly byKey = new Map<string, StoredResource>();
  private readonly byLabel = new Map<string, Bag<string>>();

  /**
   * Indexes `r` under `key` (replacing what was there); false, and nothing indexed, for a malformed
   * spec. `parsed`: what parseWorkload already made of `r`, when the caller has it.
   */
  add(key: string, r: StoredResource, parsed: Workload | undefined = parseWorkload(key, r)): boolean {
    const old = this.byKey.get(key);
    if (!parsed) {
      if (old) this.remove(key);
      return false;
    }
    if (old && scopeOf(old) === scopeOf(r) && sameLabels(old.spec.labels, r.spec.labels)) {
      this.byKey.set(key, r);
      return true;
    }
    if (old) this.remove(key);
    this.byKey.set(key, r);
    const scope = scopeOf(r);
    for (const [k, v] of Object.entries(r.spec.labels as Record<string, string>))
      bagAdd(this.byLabel, pairKey(scope, k, v), key);
    return true;
  }

  /** Drops the resource indexed under `key`, and returns it. */
  remove(key: string): StoredResource | undefined {
    const r = this.byKey.get(key);
    if (!r) return undefined;
    this.byKey.delete(key);
    const scope = scopeOf(r);
    for (const [k, v] of Object.entries(r.spec.labels as Record<string, string>))
      bagRemove(this.byLabel, pairKey(scope, k, v), key);
    return r;
  }

  get(key: string): StoredResource | undefined {
    return this.byKey.get(key);
  }

  /** Workloads of `scope` matching `selector`, scanning the smallest label bucket (order is irrelevant: see frontendsOf). */
  select(scope: string, selector: Record<string, unknown>): Candidate[] {
    let best: Bag<string> | undefined;
    for (const [k, v] of Object.entries(selector)) {
      const bucket = this.byLabel.get(pairKey(scope, k, v));
      if (!bucket) return [];
      if (best === undefined || bagSize(bucket) < bagSize(best)) best = bucket;
    }
    const out: Candidate[] = [];
    // An empty selector (schemas reject it) selects the whole scope: a scan, kept off the hot path.
    const found =
      best === undefined ? this.byKey.values() : [...bagValues(best)].map((k) => this.byKey.get(k)!);
    for (const r of found) {
      const { address, labels, weight } = r.spec as Record<string, unknown>;
      if (scopeOf(r) !== scope || !matches(labels as Record<string, string>, selector)) continue;
      out.push({
        address: address as string,
        labels: labels as Record<string, string>,
        weight: weightOf(weight),
      });
    }
    return out;
  }
}

/** Two well-formed label sets with the same pairs. */
export function sameLabels(a: unknown, b: unknown): boolean {
  const x = a as Record<string, string>;
  const y = b as Record<string, string>;
  let n = 0;
  for (const k in x) {
    if (x[k] !== y[k]) return false;
    n++;
  }
  for (const _ in y) n--;
  return n === 0;
}

export function addTo<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  const set = m.get(k);
  if (set) set.add(v);
  else m.set(k, new Set([v]));
}

export function removeFrom<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  const set = m.get(k);
  if (!set) return;
  set.delete(v);
  if (set.size === 0) m.delete(k);
}

/** A Workload resource as compile reads it, or undefined when its spec is malformed. */
export function parseWorkload(key: string, r: StoredResource): Workload | undefined {
  const { address, node, identity, labels, weight } = r.spec;
  if (!str(address) || !str(node) || !str(identity) || !isObj(labels)) return undefined;
  return {
    key,
    namespace: r.namespace,
    name: r.name,
    node,
    address,
    identity,
    labels: labels as Record<string, string>,
    weight: weightOf(weight),
  };
}

/** A workload's weight: default 1. */
function weightOf(weight: unknown): number {
  return typeof weight === 'number' && weight > 0 ? weight : 1;
}

/** `namespace/service` a Route or AuthorizationPolicy points at. */
export function targetOf(r: StoredResource): string | undefined {
  return str(r.spec.service) ? `${r.namespace}/${r.spec.service}` : undefined;
}

/** Several Routes for one Service: the one with the smallest name wins (deterministic). */
export function chooseRoute(routes: Iterable<StoredResource> | undefined): StoredResource | undefined {
  let best: StoredResource | undefined;
  for (const r of routes ?? []) if (!best || r.name < best.name) best = r;
  return best;
}

function addWeight(a: Weight, b: Weight): Weight {
  return a.den === b.den
    ? { num: a.num + b.num, den: a.den }
    : { num: a.num * b.den + b.num * a.den, den: a.den * b.den };
}

// Addresses repeat across frontends (one per port); parse each once per compile.
export class Addresses {
  private readonly cache = new Map<string, number>();
  get(ip: string): number {
    let n = this.cache.get(ip);
    if (n === undefined) {
      n = ipv4ToU32(ip);
      this.cache.set(ip, n);
    }
    return n;
  }
}

/**
 * `addr:port/PROTO`, built by join: a template literal makes a tree of cons
 * strings (~160 bytes), join one flat string (~40); the agent keeps one per
 * frontend and backend of the mesh, in its id maps and indexes.
 */
export function flatKey(address: string, port: number, protocol: string): string {
  return [address, ':', String(port), '/', protocol].join('');
}

export function frontendsOf(
  svc: StoredResource,
  addrs: Addresses,
  index: WorkloadIndex,
  route: StoredResource | undefined,
  policies: readonly StoredResource[],
  localIdentities: Set<string>,
  /** Addresses of this node's workloads: their backends get MESH_BE_F_LOCAL, whichever service selects them. */
  localAddrs: ReadonlySet<string>,
  maxSlots: number,
): Frontend[] {
  const { vip, ports, selector } = svc.spec;
  if (!str(vip) || !Array.isArray(ports) || !isObj(selector)) throw new Error('malformed Service spec');
  const vipNum = addrs.get(vip);
  const candidates = index.select(svc.namespace, selector);

  // Each workload's share as a rational, before ports multiply it into destinations.
  const shares: Array<[Candidate, Weight]> = [];
  const subsets =
    route && Array.isArray(route.spec.backends) ? (route.spec.backends as unknown[]) : undefined;
  if (subsets) {
    for (const s of subsets) {
      if (!isObj(s) || !isObj(s.selector) || typeof s.weight !== 'number' || s.weight <= 0) continue;
      const members = candidates.filter((w) => matches(w.labels, s.selector as Record<string, unknown>));
      const total = BigInt(members.reduce((a, w) => a + w.weight, 0));
      for (const w of members) shares.push([w, { num: BigInt(s.weight) * BigInt(w.weight), den: total }]);
    }
  } else {
    for (const w of candidates) shares.push([w, { num: BigInt(w.weight), den: 1n }]);
  }

  const svcPolicies = [...policies].sort((a, b) => (a.name < b.name ? -1 : 1));
  const out: Frontend[] = [];
  for (const p of ports as Array<Record<string, unknown>>) {
    const port = p.port as number;
    const proto = protoNumber(String(p.protocol));
    const target = typeof p.targetPort === 'number' ? p.targetPort : port;
    const byDest = new Map<string, Dest>();
    for (const [w, weight] of shares) {
      const addr = addrs.get(w.address);
      // Same text as ids.backendKey(addr, ...): validated addresses have no leading zeros.
      const key = flatKey(w.address, target, String(p.protocol));
      const flags = localAddrs.has(w.address) ? BE_F_LOCAL : 0;
      const have = byDest.get(key);
      if (have) {
        have.weight = addWeight(have.weight, weight);
        have.flags |= flags;
      } else byDest.set(key, { key, addr, port: target, proto, flags, weight });
    }
    let dests = [...byDest.values()].sort((a, b) => a.addr - b.addr || a.port - b.port);
    // Every slot table must fit MAX_SLOTS_PER_SERVICE even after the one-slot-minimum bump.
    const cap = MAX_SLOTS_PER_SERVICE / 2;
    if (dests.length > cap) dests = dests.slice(0, cap);
    const counts = slotCounts(
      dests.map((d) => d.weight),
      Math.max(1, Math.min(maxSlots, MAX_SLOTS_PER_SERVICE - dests.length)),
    );

    let flags = 0;
    const policy = new Map<string, number>();
    for (const pol of svcPolicies) {
      const { action, from, ports: polPorts } = pol.spec;
      if (Array.isArray(polPorts) && !polPorts.includes(port)) continue;
      if (action !== 'ALLOW' && action !== 'DENY') continue;
      flags |= action === 'ALLOW' ? SVC_F_ALLOW : SVC_F_DENY;
      for (const src of Array.isArray(from) ? from : []) {
        const identity = isObj(src) && str(src.identity) ? src.identity : undefined;
        if (!identity || !localIdentities.has(identity)) continue;
        // DENY rules first: a DENY for an identity beats any ALLOW for it.
        if (action === 'DENY' || policy.get(identity) !== ACTION_DENY)
          policy.set(identity, action === 'DENY' ? ACTION_DENY : ACTION_ALLOW);
      }
    }
    out.push({
      key: flatKey(vip, port, protoName(proto)),
      vip: vipNum,
      port,
      proto,
      flags,
      dests,
      counts,
      policy,
    });
  }
  return out;
}

/** Index keys of a Service's selector: `ns\0k=v` per pair, or `ns\0*` for an (invalid) empty selector. */
export function selectorPairs(r: StoredResource): string[] {
  const sel = isObj(r.spec.selector) ? Object.entries(r.spec.selector) : [];
  return sel.length ? sel.map(([k, v]) => pairKey(r.namespace, k, v)) : [anyPairKey(r.namespace)];
}

/** `scope\0k=v`, joined flat (see flatKey): selector indexes keep one per label pair in use. */
export function pairKey(scope: string, k: string, v: unknown): string {
  return [scope, '\0', k, '=', String(v)].join('');
}

/** The index key of an empty selector in `scope`. */
export function anyPairKey(scope: string): string {
  return [scope, '\0*'].join('');
}

export function sameSet<T>(a: Set<T>, b: Set<T>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x));
}

export function symmetricDiff<T>(a: Set<T>, b: Set<T>): Set<T> {
  const out = new Set<T>();
  for (const x of a) if (!b.has(x)) out.add(x);
  for (const x of b) if (!a.has(x)) out.add(x);
  return out;
}
