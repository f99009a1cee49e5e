import { type CommittedEvent, emptyState, IndexedState } from '@meshplane/domain';
import type pg from 'pg';
import { toEvent, toStoredResource } from './rows';
import type { Head } from './types';

/**
 * The state at the head of the log, held in memory with its validation indexes
 * so that appends need no queries to check versions, no-ops and references. It
 * is only trusted under the head lock: `load` catches it up from the log (other
 * processes append too), and any doubt (a rolled-back batch, a lost connection)
 * drops it so the next append reloads it from the projection.
 */
export class HeadCache {
  private cache: IndexedState | undefined;
  private hash: string | undefined;

  get current(): IndexedState | undefined {
    return this.cache;
  }

  /**
   * The head this process last saw committed (its own commits included), with
   * the state at it: what an optimistic append builds on. Another process may
   * have appended since; the guarded write finds that out.
   */
  get assumedHead(): { state: IndexedState; head: Head } | undefined {
    if (!this.cache || this.hash === undefined) return undefined;
    return { state: this.cache, head: { revision: this.cache.revision, hash: this.hash } };
  }

  invalidate(): void {
    this.cache = undefined;
    this.hash = undefined;
  }

  /** The state at `head`; the caller holds the head lock on `client`. */
  async load(client: pg.PoolClient, head: Head): Promise<IndexedState> {
    const headRevision = head.revision;
    this.hash = head.hash;
    if (!this.cache || this.cache.revision > headRevision) {
      const rows = await client.query('SELECT kind, namespace, name, spec, version, origin FROM resources');
      const state = emptyState();
      for (const row of rows.rows) {
        const r = toStoredResource(row);
        state.resources.set(`${r.kind}/${r.namespace}/${r.name}`, r);
      }
      state.revision = headRevision;
      this.cache = new IndexedState(state);
    } else if (this.cache.revision < headRevision) {
      const rows = await client.query(
        `SELECT revision, seq, kind, namespace, name, op, spec, prev_version, origin FROM events
         WHERE revision > $1 AND revision <= $2 ORDER BY revision, seq`,
        [this.cache.revision, headRevision],
      );
      this.apply(rows.rows.map(toEvent), headRevision, head.hash);
    }
    return this.cache;
  }

  /** Applies events up to the head `revision` (hash `hash`) once; events at or below the cached revision are skipped. */
  apply(events: CommittedEvent[], revision: number, hash: string): void {
    const cache = this.cache;
    if (!cache || cache.revision >= revision) return;
    this.hash = hash;
    // apply() advances the revision, so compare against where the cache started.
    const from = cache.revision;
    for (const e of events) if (e.revision > from) cache.apply(e);
    cache.state.revision = revision;
  }
}
