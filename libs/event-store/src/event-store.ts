import {
  type Change,
  ConflictError,
  cloneState,
  emptyState,
  evolveInPlace,
  type MeshState,
  type ResourceRef,
} from '@meshplane/domain';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import { checkAppendOptions } from './append';
import { createKysely, createPool } from './connection';
import { GroupCommitter } from './group-commit';
import { HeadCache } from './head-cache';
import { LogReader } from './log-reader';
import { toEvent, toStoredResource } from './rows';
import type { LogDatabase } from './schema';
import { type SnapshotInfo, SnapshotRepository } from './snapshots';
import type {
  AppendOptions,
  AppendResult,
  ChangeSet,
  ChangeSetFilter,
  ChangeSetHeader,
  Head,
  ResourceHistoryEntry,
  VerifyResult,
} from './types';
import { verifyChain } from './verify';

export interface EventStoreOptions {
  databaseUrl: string;
  /** Cluster name recorded on every change set. */
  cluster?: string;
  /** A snapshot is written every N revisions, at the end of the batch that reaches the multiple (0 disables). */
  snapshotInterval?: number;
  poolSize?: number;
  applicationName?: string;
  onError?: (err: Error) => void;
}

/**
 * The append-only, hash-chained log of revisions. Appends are serialized on the
 * one-row head (its row lock, taken by the guarded head UPDATE of the write or
 * by SELECT ... FOR UPDATE), which makes revisions dense and commit ordered and
 * gives each hash its predecessor. The process keeps the state at the head in
 * memory so that validation and no-op detection need no queries; it catches up
 * from the log whenever another process appended.
 */
export class EventStore {
  readonly reader: LogReader;
  readonly snapshots: SnapshotRepository;
  readonly cluster: string;
  readonly snapshotInterval: number;
  private readonly headCache = new HeadCache();
  private readonly committer: GroupCommitter;
  private pendingSnapshots = new Set<Promise<unknown>>();

  private constructor(
    readonly pool: pg.Pool,
    readonly db: Kysely<LogDatabase>,
    opts: EventStoreOptions,
  ) {
    this.cluster = opts.cluster ?? 'local';
    this.snapshotInterval = opts.snapshotInterval ?? 1000;
    this.reader = new LogReader(db);
    this.snapshots = new SnapshotRepository(db);
    this.committer = new GroupCommitter({
      pool,
      head: this.headCache,
      cluster: this.cluster,
      findIdempotent: (o, client) => this.findIdempotent(o, client),
      onCommitted: (committed) => this.maybeSnapshot(committed),
    });
  }

  static async open(opts: EventStoreOptions): Promise<EventStore> {
    const pool = createPool(opts.databaseUrl, {
      max: opts.poolSize ?? 10,
      applicationName: opts.applicationName ?? 'meshplane-event-store',
      ...(opts.onError ? { onError: opts.onError } : {}),
    });
    const store = new EventStore(pool, createKysely<LogDatabase>(pool), opts);
    try {
      await store.ping();
    } catch (err) {
      await pool.end();
      throw err;
    }
    return store;
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    await this.flushSnapshots();
    await this.db.destroy();
  }

  // ---------------------------------------------------------------- writes

  /**
   * Appends one change set as one revision (or none, when it changes nothing).
   * Concurrent appends from this process are group-committed: see GroupCommitter.
   */
  async append(changes: Change[], opts: AppendOptions): Promise<AppendResult> {
    checkAppendOptions(opts);
    // Fast path outside the lock; checked again under it, where it counts.
    if (opts.idempotencyKey) {
      const seen = await this.findIdempotent(opts);
      if (seen) return { status: 'replayed', changeSet: seen };
    }
    return this.committer.submit(changes, opts);
  }

  private async findIdempotent(opts: AppendOptions, client?: pg.PoolClient): Promise<ChangeSet | undefined> {
    const q =
      'SELECT revision, idempotency_fingerprint FROM change_sets WHERE actor = $1 AND idempotency_key = $2';
    const query = () =>
      (client ?? this.pool).query<{ revision: number; idempotency_fingerprint: string | null }>(q, [
        opts.actor,
        opts.idempotencyKey,
      ]);
    // Inside the group commit the client is already scoped (group-commit.ts).
    const res = await (client || !opts.traceScope ? query() : opts.traceScope(query));
    const row = res.rows[0];
    if (!row) return undefined;
    if (
      opts.idempotencyFingerprint &&
      row.idempotency_fingerprint &&
      row.idempotency_fingerprint !== opts.idempotencyFingerprint
    ) {
      const head = await this.head();
      throw new ConflictError(
        `idempotency key was already used by revision ${row.revision} for a different request`,
        head.revision,
        [{ path: 'idempotencyKey', message: `used by revision ${row.revision} with another body` }],
      );
    }
    return this.reader.getChangeSet(row.revision);
  }

  /**
   * A batch that reaches a multiple of the interval gets a snapshot at its last
   * revision, taken from the head state in memory: a snapshot at the multiple
   * itself, when that falls inside the batch, would need a replay to build.
   */
  private maybeSnapshot(committed: ChangeSet[]): void {
    const n = this.snapshotInterval;
    if (n <= 0) return;
    const first = committed[0]!.revision;
    const cs = committed[committed.length - 1]!;
    if (Math.floor(cs.revision / n) === Math.floor((first - 1) / n)) return;
    const cached = this.headCache.current;
    const state = cached?.revision === cs.revision ? cloneState(cached.state) : undefined;
    const job = (state ? this.snapshots.write(state, cs.hash) : this.createSnapshot(cs.revision))
      .catch(() => undefined) // a missed snapshot only costs replay time; the next interval writes one
      .finally(() => this.pendingSnapshots.delete(job));
    this.pendingSnapshots.add(job);
  }

  async flushSnapshots(): Promise<void> {
    await Promise.all([...this.pendingSnapshots]);
  }

  /** Writes a snapshot of the state at `revision` (default: head). */
  async createSnapshot(revision?: number): Promise<SnapshotInfo | undefined> {
    const rev = revision ?? (await this.head()).revision;
    if (rev === 0) return undefined;
    const state = await this.stateAt(rev);
    const cs = await this.reader.changeSetRows(rev, rev);
    return this.snapshots.write(state, cs[0]!.hash);
  }

  /**
   * Drops the current-state projection and rebuilds it by replaying the log,
   * under the head lock so no append interleaves.
   */
  async rebuildProjection(): Promise<{ revision: number; resources: number }> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const head = await client.query<{ revision: number }>(
        'SELECT revision FROM mesh_head WHERE id FOR UPDATE',
      );
      const revision = head.rows[0]!.revision;
      const state = await this.replay(revision);
      await client.query('DELETE FROM resources');
      const rs = [...state.resources.values()];
      for (let i = 0; i < rs.length; i += 1000) {
        const chunk = rs.slice(i, i + 1000);
        await client.query(
          `INSERT INTO resources (kind, namespace, name, spec, version, origin)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]::jsonb[], $5::bigint[], $6::text[])`,
          [
            chunk.map((r) => r.kind),
            chunk.map((r) => r.namespace),
            chunk.map((r) => r.name),
            chunk.map((r) => JSON.stringify(r.spec)),
            chunk.map((r) => r.version),
            chunk.map((r) => r.origin ?? null),
          ],
        );
      }
      await client.query('COMMIT');
      this.headCache.invalidate();
      return { revision, resources: rs.length };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  // ---------------------------------------------------------------- reads

  head(): Promise<Head> {
    return this.reader.head();
  }

  getChangeSet(revision: number): Promise<ChangeSet | undefined> {
    return this.reader.getChangeSet(revision);
  }

  readRevisions(from: number, opts?: { to?: number; batchSize?: number }): AsyncGenerator<ChangeSet> {
    return this.reader.readRevisions(from, opts);
  }

  listChangeSets(filter?: ChangeSetFilter): Promise<ChangeSetHeader[]> {
    return this.reader.listChangeSets(filter);
  }

  resourceHistory(ref: ResourceRef): Promise<ResourceHistoryEntry[]> {
    return this.reader.resourceHistory(ref);
  }

  /** The state at the head, read from the projection in one consistent snapshot. */
  async currentState(): Promise<MeshState> {
    return this.db
      .transaction()
      .setIsolationLevel('repeatable read')
      .setAccessMode('read only')
      .execute(async (trx) => {
        const head = await trx.selectFrom('mesh_head').select('revision').executeTakeFirstOrThrow();
        const rows = await trx.selectFrom('resources').selectAll().execute();
        const state = emptyState();
        state.revision = head.revision;
        for (const row of rows) {
          const r = toStoredResource(row);
          state.resources.set(`${r.kind}/${r.namespace}/${r.name}`, r);
        }
        return state;
      });
  }

  /** The state at any past revision: the nearest snapshot at or below it, then replay. */
  async stateAt(revision: number): Promise<MeshState> {
    await this.reader.assertRevision(revision);
    return this.replay(revision);
  }

  private async replay(revision: number): Promise<MeshState> {
    const state = (await this.snapshots.latestAtOrBelow(revision)) ?? emptyState();
    const step = 5000;
    for (let lo = state.revision; lo < revision; lo += step) {
      const rows = await this.reader.eventRows(lo, Math.min(revision, lo + step));
      for (const row of rows) evolveInPlace(state, toEvent(row));
    }
    state.revision = revision;
    return state;
  }

  /** Recomputes the hash chain over [from, to] and names the first revision that does not match. */
  async verify(from?: number, to?: number): Promise<VerifyResult> {
    return verifyChain(this.reader, from, to);
  }
}
