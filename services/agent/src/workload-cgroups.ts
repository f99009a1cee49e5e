import { ensureWorkloadCgroup, workloadCgroupId } from '@meshplane/dataplane';
import type { MeshState } from '@meshplane/domain';

/*
 * The cgroups of this node's workloads, `<MESH_CGROUP>/<namespace>.<name>`. The agent creates
 * them (so processes can be placed in them before or after the Workload is applied) and keys
 * mesh_identities by their cgroup ids (inode numbers). A cgroup removed and created again
 * gets a NEW id, and one created by hand appears between revisions: the agent rescans
 * periodically and recompiles the identities when any id differs from what it compiled.
 */

export interface WorkloadName {
  namespace: string;
  name: string;
}

/** The file-system side, injectable so the bookkeeping is unit-testable without cgroupfs. */
export interface CgroupOps {
  ensure(root: string, namespace: string, name: string): void;
  idOf(root: string, namespace: string, name: string): bigint | undefined;
}

const realOps: CgroupOps = {
  ensure: (root, namespace, name) => void ensureWorkloadCgroup(root, namespace, name),
  idOf: workloadCgroupId,
};

/** Cgroup ids by workload key, '' while a cgroup is missing (comparable snapshots). */
export type CgroupSnapshot = Map<string, string>;

/** Keys whose id differs between two snapshots (including added and removed workloads). */
export function changedCgroups(a: CgroupSnapshot, b: CgroupSnapshot): string[] {
  const out = new Set<string>();
  for (const [k, v] of a) if (b.get(k) !== v) out.add(k);
  for (const k of b.keys()) if (!a.has(k)) out.add(k);
  return [...out].sort();
}

/** `Workload/<ns>/<name>` resources of `node` in a state. */
export function isLocalWorkload(state: MeshState, key: string, node: string): boolean {
  if (!key.startsWith('Workload/')) return false;
  const r = state.resources.get(key);
  return (r?.spec as { node?: unknown } | undefined)?.node === node;
}

export class WorkloadCgroups {
  /** This node's workloads, by resource key. */
  private readonly local = new Map<string, WorkloadName>();
  /** Workloads whose cgroup could not be created, with the reason (reported once each). */
  private readonly failed = new Map<string, string>();

  constructor(
    readonly root: string,
    private readonly node: string,
    private readonly onError: (key: string, message: string) => void = () => undefined,
    private readonly ops: CgroupOps = realOps,
  ) {}

  /** For compile(): the id of a workload's cgroup, undefined while it does not exist. */
  readonly idOf = (w: WorkloadName): bigint | undefined => this.ops.idOf(this.root, w.namespace, w.name);

  /** Rebuilds the set of local workloads from a whole state (after a bootstrap). */
  reset(state: MeshState): void {
    this.local.clear();
    this.failed.clear();
    this.track(state, state.resources.keys());
  }

  /** Follows changed resource keys: a Workload that moved onto or off this node. */
  track(state: MeshState, keys: Iterable<string>): void {
    for (const key of keys) {
      if (!key.startsWith('Workload/')) continue;
      if (isLocalWorkload(state, key, this.node)) {
        const r = state.resources.get(key)!;
        this.local.set(key, { namespace: r.namespace, name: r.name });
      } else {
        this.local.delete(key);
        this.failed.delete(key);
      }
    }
  }

  get size(): number {
    return this.local.size;
  }

  /** Creates every missing cgroup of a local workload (mkdir -p; a removed one comes back). */
  ensureAll(): void {
    for (const [key, w] of this.local) {
      try {
        this.ops.ensure(this.root, w.namespace, w.name);
        this.failed.delete(key);
      } catch (err) {
        const message = (err as Error).message;
        if (this.failed.get(key) !== message) this.onError(key, message);
        this.failed.set(key, message);
      }
    }
  }

  /** The cgroup id of every local workload right now. */
  snapshot(): CgroupSnapshot {
    const out: CgroupSnapshot = new Map();
    for (const [key, w] of this.local)
      out.set(key, String(this.ops.idOf(this.root, w.namespace, w.name) ?? ''));
    return out;
  }

  /** How many local workloads have a cgroup. */
  present(snapshot = this.snapshot()): number {
    let n = 0;
    for (const v of snapshot.values()) if (v !== '') n++;
    return n;
  }
}
