import type { CommittedEvent } from './events';
import { labelsMatch } from './federation';
import { refKey, type StoredResource } from './resource';
import { evolveInPlace, type MeshState } from './state';

/**
 * Which events can change a cluster's exported view (`exportedView`): an own Service that is or
 * was exported, and an own Workload that an exported Service's selector matches before or after
 * the event. Every other event (nearly all of them where a few services are exported, all of them
 * where none is) leaves the view as it was, so the relay does not recompute it: that costs a scan
 * of the whole mesh, about 35 ms at 10k services, for every revision.
 */
export class ExportWatch {
  /** Own exported Services by refKey, and their keys by namespace. */
  private readonly exported = new Map<string, StoredResource>();
  private readonly byNamespace = new Map<string, Set<string>>();

  constructor(private readonly cluster?: string) {}

  /** Indexes what `state` exports (after loading a state). */
  reset(state: MeshState): void {
    this.exported.clear();
    this.byNamespace.clear();
    for (const [key, r] of state.resources) if (this.isExported(r)) this.add(key, r);
  }

  /** Folds `e` into `state` (evolveInPlace) and says whether the exported view may have changed. */
  evolve(state: MeshState, e: CommittedEvent): boolean {
    const key = refKey(e);
    const before = state.resources.get(key);
    evolveInPlace(state, e);
    const after = state.resources.get(key);
    if (e.kind === 'Service') {
      const was = this.exported.has(key);
      this.remove(key);
      const is = after !== undefined && this.isExported(after);
      if (is) this.add(key, after);
      return was || is;
    }
    if (e.kind !== 'Workload') return false;
    const services = this.byNamespace.get(e.namespace);
    if (!services) return false;
    for (const w of [before, after]) {
      if (!w || !this.own(w)) continue;
      for (const s of services)
        if (labelsMatch(w.spec.labels, this.exported.get(s)!.spec.selector)) return true;
    }
    return false;
  }

  private own(r: StoredResource): boolean {
    return r.origin === undefined || r.origin === this.cluster;
  }

  private isExported(r: StoredResource): boolean {
    return r.kind === 'Service' && r.spec.export === true && this.own(r);
  }

  private add(key: string, r: StoredResource): void {
    this.exported.set(key, r);
    let keys = this.byNamespace.get(r.namespace);
    if (!keys) {
      keys = new Set();
      this.byNamespace.set(r.namespace, keys);
    }
    keys.add(key);
  }

  private remove(key: string): void {
    const r = this.exported.get(key);
    if (!r) return;
    this.exported.delete(key);
    const keys = this.byNamespace.get(r.namespace)!;
    keys.delete(key);
    if (keys.size === 0) this.byNamespace.delete(r.namespace);
  }
}
