import type { CommittedEvent } from './events';
import { refKey, type StoredResource } from './resource';
import { evolveInPlace, type MeshState } from './state';
import { type StateView, serviceRefOf, vipKeys } from './validate';

type Bucket = Map<string, StoredResource>;

function add(index: Map<string, Bucket>, key: string, r: StoredResource): void {
  let bucket = index.get(key);
  if (!bucket) {
    bucket = new Map();
    index.set(key, bucket);
  }
  bucket.set(refKey(r), r);
}

function remove(index: Map<string, Bucket>, key: string, r: StoredResource): void {
  const bucket = index.get(key);
  if (!bucket) return;
  bucket.delete(refKey(r));
  if (bucket.size === 0) index.delete(key);
}

/**
 * A MeshState with the secondary indexes that validation needs (by kind, by
 * VIP, Route/policy referrers of each Service), maintained incrementally. The
 * event store keeps one at its head so that validating a change against 10k
 * services costs lookups, not scans, while the append lock is held.
 */
export class IndexedState {
  private readonly byKind = new Map<string, Bucket>();
  private readonly byVip = new Map<string, Bucket>();
  private readonly referrers = new Map<string, Bucket>();

  constructor(readonly state: MeshState) {
    for (const r of state.resources.values()) this.index(r);
  }

  get revision(): number {
    return this.state.revision;
  }

  /** evolveInPlace, keeping the indexes in step. */
  apply(event: CommittedEvent): void {
    const key = refKey(event);
    const before = this.state.resources.get(key);
    if (before) this.unindex(before);
    evolveInPlace(this.state, event);
    const after = this.state.resources.get(key);
    if (after) this.index(after);
  }

  view(): StateView {
    const { state, byKind, byVip, referrers } = this;
    return {
      get revision() {
        return state.revision;
      },
      get: (ref) => state.resources.get(refKey(ref)),
      list: (kind?: string) =>
        kind === undefined ? state.resources.values() : (byKind.get(kind)?.values() ?? []),
      servicesUsing: (vipKey: string) => byVip.get(vipKey)?.values() ?? [],
      referrersOf: (serviceKey: string) => referrers.get(serviceKey)?.values() ?? [],
    };
  }

  private index(r: StoredResource): void {
    add(this.byKind, r.kind, r);
    if (r.kind === 'Service') for (const vk of vipKeys(r.spec)) add(this.byVip, vk, r);
    const target = serviceRefOf(r);
    if (target) add(this.referrers, refKey(target), r);
  }

  private unindex(r: StoredResource): void {
    remove(this.byKind, r.kind, r);
    if (r.kind === 'Service') for (const vk of vipKeys(r.spec)) remove(this.byVip, vk, r);
    const target = serviceRefOf(r);
    if (target) remove(this.referrers, refKey(target), r);
  }
}
