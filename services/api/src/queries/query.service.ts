import {
  diffStates,
  listResources,
  type MeshState,
  NotFoundError,
  type ResourceRef,
  refKey,
  type StateDiff,
  type StoredResource,
} from '@meshplane/domain';
import {
  type ChangeSet,
  type ChangeSetHeader,
  EventStore,
  type ResourceHistoryEntry,
} from '@meshplane/event-store';
import { Injectable } from '@nestjs/common';

const GENESIS_HASH = '0'.repeat(64);

const show = (r: ResourceRef) => `${r.kind} ${r.namespace}/${r.name}`;

/** Read side: states at any revision, history, diffs. */
@Injectable()
export class QueryService {
  constructor(private readonly store: EventStore) {}

  /** The current state, or the state at `revision` (NotFoundError beyond the head). */
  state(revision?: number): Promise<MeshState> {
    return revision === undefined ? this.store.currentState() : this.store.stateAt(revision);
  }

  async resources(filter: { kind?: string; namespace?: string; revision?: number }) {
    const state = await this.state(filter.revision);
    const f: Partial<ResourceRef> = {};
    if (filter.kind) f.kind = filter.kind;
    if (filter.namespace) f.namespace = filter.namespace;
    return { revision: state.revision, items: listResources(state, f) };
  }

  async resource(
    ref: ResourceRef,
    revision?: number,
  ): Promise<{ revision: number; resource: StoredResource }> {
    const state = await this.state(revision);
    const resource = state.resources.get(refKey(ref));
    if (!resource) throw new NotFoundError(`${show(ref)} does not exist at revision ${state.revision}`);
    return { revision: state.revision, resource };
  }

  async history(ref: ResourceRef): Promise<{ items: ResourceHistoryEntry[] }> {
    const items = await this.store.resourceHistory(ref);
    if (items.length === 0) throw new NotFoundError(`${show(ref)} has no history`);
    return { items };
  }

  async revisions(from: number, limit: number) {
    const [head, items] = await Promise.all([
      this.store.head(),
      this.store.listChangeSets({ fromRevision: from, limit }),
    ]);
    const last = items.at(-1);
    const next = items.length === limit && last && last.revision < head.revision ? last.revision + 1 : null;
    return { headRevision: head.revision, items, next };
  }

  async revision(revision: number): Promise<ChangeSet> {
    const cs = await this.store.getChangeSet(revision);
    if (!cs)
      throw new NotFoundError(`revision ${revision} does not exist`, [
        { path: 'rev', message: 'no such revision' },
      ]);
    return cs;
  }

  async diff(from: number, to: number): Promise<{ from: number; to: number } & StateDiff> {
    const [a, b] = await Promise.all([this.stateOrNotFound(from, 'from'), this.stateOrNotFound(to, 'to')]);
    return { from, to, ...diffStates(a, b) };
  }

  /** What an agent needs to start: the current state and the revision and hash it is at. */
  async snapshot() {
    const state = await this.store.currentState();
    let hash = GENESIS_HASH;
    if (state.revision > 0) {
      const [header]: ChangeSetHeader[] = await this.store.listChangeSets({
        fromRevision: state.revision,
        limit: 1,
      });
      hash = header?.hash ?? hash;
    }
    return { cluster: this.store.cluster, revision: state.revision, hash, resources: listResources(state) };
  }

  private async stateOrNotFound(revision: number, param: string): Promise<MeshState> {
    try {
      return await this.store.stateAt(revision);
    } catch (err) {
      if (err instanceof NotFoundError)
        throw new NotFoundError(err.message, [{ path: param, message: err.message }]);
      throw err;
    }
  }
}
