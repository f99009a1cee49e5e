import { affinityOf, globalKeyOf, type StoredResource } from '@meshplane/domain';
import {
  type Addresses,
  type Dest,
  type Frontend,
  frontendsOf,
  parseWorkload,
  scopeOf,
  type Workload,
  type WorkloadIndex,
} from './frontends';
import { MAX_SLOTS_PER_SERVICE } from './layout';
import { slotCounts, type Weight } from './weights';

/*
 * Global services (federation, issue 7; the model is in libs/domain federation.ts).
 *
 * - Selection never crosses clusters: an imported resource is indexed under the
 *   scope `<namespace>@<origin>` (`scopeOf`), so a local selector only sees
 *   local Workloads and an imported Service only its own origin's.
 * - A local Service and the imported Services with the same namespace and source
 *   name are one unit of compilation (`globalKeyOf`), programmed on the local
 *   Service's VIP and ports; without a local Service, on each imported one's
 *   own VIP. Each origin maps ports to its own targetPorts.
 * - Affinity (local Service's, else the first origin's; default local) picks the
 *   tier: local = local backends, remote only when no local one has a share;
 *   remote = the reverse; none = both, by workload weight. A Route splits only
 *   the local tier; under none that tier keeps the total weight of its
 *   workloads, so a 90/10 Route does not outweigh the other clusters.
 * - A single-member group compiles exactly as before federation existed.
 */

export { globalKeyOf, scopeOf };

/** parseWorkload, indexed under its scope (an import never matches a local selector). */
export function scopedWorkload(key: string, r: StoredResource): Workload | undefined {
  const w = parseWorkload(key, r);
  if (w && r.origin !== undefined) w.namespace = scopeOf(r);
  return w;
}

/** A Service as its own scope's selector sees it. */
function scoped(svc: StoredResource): StoredResource {
  return svc.origin === undefined ? svc : { ...svc, namespace: scopeOf(svc) };
}

/** Members sorted: the local Service first, then imports by origin. */
export function sortMembers(members: Iterable<StoredResource>): StoredResource[] {
  return [...members].sort((a, b) =>
    a.origin === b.origin
      ? 0
      : a.origin === undefined
        ? -1
        : b.origin === undefined
          ? 1
          : a.origin < b.origin
            ? -1
            : 1,
  );
}

export interface GroupContext {
  addrs: Addresses;
  index: WorkloadIndex;
  route: StoredResource | undefined;
  policies: readonly StoredResource[];
  localIdentities: Set<string>;
  localAddrs: ReadonlySet<string>;
  maxSlots: number;
}

/** The frontends of one global service (`members` share `globalKeyOf`). Throws on a malformed spec. */
export function groupFrontends(members: readonly StoredResource[], ctx: GroupContext): Frontend[] {
  const sorted = sortMembers(members);
  const build = (svc: StoredResource, local: boolean) =>
    frontendsOf(
      scoped(svc),
      ctx.addrs,
      ctx.index,
      local ? ctx.route : undefined,
      local ? ctx.policies : [],
      ctx.localIdentities,
      ctx.localAddrs,
      ctx.maxSlots,
    );
  if (sorted.length === 1) return build(sorted[0]!, sorted[0]!.origin === undefined);

  const local = sorted[0]!.origin === undefined ? sorted[0] : undefined;
  const imports = local ? sorted.slice(1) : sorted;
  const affinity = affinityOf((local ?? imports[0]!).spec);
  const localFronts = local ? build(local, true) : [];
  // Under none, a Route's split is rescaled to the local workloads' own total weight.
  const unrouted = local && ctx.route && affinity === 'none' ? build(local, false) : undefined;
  // Remote destinations per `port/protocol`, with each origin's targetPort.
  const remote = new Map<string, Dest[]>();
  const importFronts = imports.map((svc) => build(svc, false));
  for (const fs of importFronts)
    for (const f of fs) {
      const k = `${f.port}/${f.proto}`;
      remote.set(k, [...(remote.get(k) ?? []), ...f.dests.filter((_, i) => f.counts[i]! > 0)]);
    }

  const out: Frontend[] = [];
  const seen = new Set<string>();
  (local ? localFronts : importFronts.flat()).forEach((f, n) => {
    if (seen.has(f.key)) return;
    seen.add(f.key);
    let near = local ? f.dests.filter((_, i) => f.counts[i]! > 0) : [];
    if (unrouted) near = rescaled(near, unrouted[n]!.dests);
    const far = remote.get(`${f.port}/${f.proto}`) ?? [];
    const chosen =
      affinity === 'none'
        ? [...near, ...far]
        : affinity === 'remote'
          ? far.length > 0
            ? far
            : near
          : near.length > 0
            ? near
            : far;
    out.push({ ...f, ...weighted(chosen, ctx.maxSlots) });
  });
  return out;
}

function sum(ws: readonly Weight[]): Weight {
  return ws.reduce(addWeight, { num: 0n, den: 1n });
}

function addWeight(a: Weight, b: Weight): Weight {
  return a.den === b.den
    ? { num: a.num + b.num, den: a.den }
    : { num: a.num * b.den + b.num * a.den, den: a.den * b.den };
}

/** `dests` scaled so that their weights add up to the weights of `plain` (same frontend, no Route). */
function rescaled(dests: readonly Dest[], plain: readonly Dest[]): Dest[] {
  const have = sum(dests.map((d) => d.weight));
  const want = sum(plain.map((d) => d.weight));
  if (have.num === 0n) return [...dests];
  return dests.map((d) => ({
    ...d,
    weight: { num: d.weight.num * want.num * have.den, den: d.weight.den * want.den * have.num },
  }));
}

/** Merged destinations (same key: weights add) and their slot counts, as frontendsOf sizes them. */
function weighted(dests: readonly Dest[], maxSlots: number): { dests: Dest[]; counts: number[] } {
  const byKey = new Map<string, Dest>();
  for (const d of dests) {
    const have = byKey.get(d.key);
    if (!have) byKey.set(d.key, { ...d });
    else {
      have.weight = addWeight(have.weight, d.weight);
      have.flags |= d.flags;
    }
  }
  let merged = [...byKey.values()].sort((a, b) => a.addr - b.addr || a.port - b.port);
  const cap = MAX_SLOTS_PER_SERVICE / 2;
  if (merged.length > cap) merged = merged.slice(0, cap);
  const counts = slotCounts(
    merged.map((d) => d.weight),
    Math.max(1, Math.min(maxSlots, MAX_SLOTS_PER_SERVICE - merged.length)),
  );
  return { dests: merged, counts };
}
