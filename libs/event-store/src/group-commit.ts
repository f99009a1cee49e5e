import { ConflictError, type IndexedState, MeshError, parseRefKey, refKey } from '@meshplane/domain';
import type pg from 'pg';
import { type PreparedAppend, type ProjectionDelta, prepareAppend, writeChangeSets } from './append';
import { isConnectionError } from './connection';
import type { HeadCache } from './head-cache';
import type { AppendOptions, AppendResult, Change, ChangeSet, Head } from './types';

interface Pending {
  changes: Change[];
  opts: AppendOptions;
  resolve: (r: AppendResult) => void;
  reject: (e: unknown) => void;
  attempts: number;
  /** Set after a batched statement failed: commit this request in a batch of its own. */
  alone?: boolean;
  /** Set when an optimistic attempt must be redone under the head lock. */
  locked?: boolean;
}

/** What an attempt decided, kept in case its autocommitted write's outcome must be looked up. */
interface Attempt {
  results: (AppendResult | Error)[];
  committed: ChangeSet[];
}

/** The guarded write found the head moved: another process appended since this one last looked. */
class HeadMoved extends Error {
  constructor() {
    super('the head moved');
  }
}

/** The batch's statement failed; which request caused it is found by retrying each alone. */
class BatchStatementFailed extends Error {
  constructor(readonly error: unknown) {
    super('batched write failed');
  }
}

export interface GroupCommitDeps {
  pool: pg.Pool;
  head: HeadCache;
  cluster: string;
  /** Looks an idempotency key up under the head lock; throws ConflictError on a fingerprint mismatch. */
  findIdempotent(opts: AppendOptions, client: pg.PoolClient): Promise<ChangeSet | undefined>;
  /** Called once per committed batch with its change sets, in revision order. */
  onCommitted(committed: ChangeSet[]): void;
}

const MAX_BATCH = 64;

/**
 * Group commit. Appends are serialized on the head lock anyway, so the
 * requests that queue up in this process while a transaction is in flight are
 * committed together in the next one: each still becomes its own revision with
 * its own hash, validated against the state its predecessors in the batch
 * produce, but they share one lock acquisition, one write statement and one
 * WAL flush. A request that is refused (validation, conflict) is answered
 * alone and the rest of its batch goes on; when the batched statement fails,
 * each request is retried in a batch of its own, so only the culprit fails.
 *
 * Optimistic first: a batch is decided against the head this process last
 * committed and written in ONE autocommitted statement whose head UPDATE is
 * guarded on that revision (see writeChangeSets), one round trip per batch.
 * When another process appended in between, nothing is written and the batch
 * is decided again under BEGIN / SELECT ... FOR UPDATE with the cache caught
 * up; so is any batch whose answers (a refusal, "unchanged") could depend on a
 * head this process has not seen.
 */
export class GroupCommitter {
  private readonly queue: Pending[] = [];
  private draining = false;

  constructor(private readonly deps: GroupCommitDeps) {}

  submit(changes: Change[], opts: AppendOptions): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ changes, opts, resolve, reject, attempts: 0 });
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.queue.length > 0) {
        // Requests under suspicion from a failed batch go one at a time.
        const batch = this.queue[0]!.alone ? this.queue.splice(0, 1) : this.takeBatch();
        await this.run(batch);
      }
    } finally {
      this.draining = false;
    }
  }

  private takeBatch(): Pending[] {
    const n = this.queue.findIndex((p) => p.alone);
    return this.queue.splice(0, Math.min(MAX_BATCH, n === -1 ? this.queue.length : n));
  }

  private async run(batch: Pending[]): Promise<void> {
    const phase: { commitSent: boolean; attempt?: Attempt } = { commitSent: false };
    try {
      this.settle(batch, await this.commit(batch, phase));
    } catch (err) {
      // Whatever the batch wrote was rolled back (or its fate is unknown): the
      // cached head may hold its tentative events, so it is dropped.
      this.deps.head.invalidate();
      if (err instanceof HeadMoved) {
        // Another process appended (or a refusal needs confirming): decide again under the lock.
        for (const p of batch) p.locked = true;
        this.queue.unshift(...batch);
        return;
      }
      const attempt = phase.attempt;
      if (attempt && isConnectionError(err)) {
        const first = attempt.committed[0]!;
        const committed = await this.isCommitted(first.changeId).catch(() => undefined);
        if (committed === true) return this.settle(batch, attempt);
        // Unknown (the server is still away): the caller decides, as after a lost COMMIT.
        if (committed === undefined) phase.commitSent = true;
      }
      if (err instanceof BatchStatementFailed) {
        if (batch.length === 1) batch[0]!.reject(err.error);
        else {
          for (const p of batch) p.alone = true;
          this.queue.unshift(...batch);
        }
        return;
      }
      // A connection that died before COMMIT was sent rolled back for sure: retry.
      // Once COMMIT was sent the outcome is unknown, and the caller decides (idempotency key).
      const retry = isConnectionError(err) && !phase.commitSent;
      const again: Pending[] = [];
      for (const p of batch) {
        if (retry && ++p.attempts < 3) again.push(p);
        else p.reject(err);
      }
      if (again.length) {
        await new Promise((r) => setTimeout(r, 100 * again[0]!.attempts));
        this.queue.unshift(...again);
      }
    }
  }

  private settle(batch: Pending[], outcome: Attempt): void {
    if (outcome.committed.length > 0) this.deps.onCommitted(outcome.committed);
    batch.forEach((p, i) => {
      const r = outcome.results[i]!;
      if (r instanceof Error || !('status' in r)) p.reject(r);
      else p.resolve(r);
    });
  }

  private async commit(
    batch: Pending[],
    phase: { commitSent: boolean; attempt?: Attempt },
  ): Promise<{ results: (AppendResult | Error)[]; committed: ChangeSet[] }> {
    // Optimistic unless a request is under suspicion: build on the head this process
    // last committed, and let the guarded write find out whether anyone appended since.
    const assumed = batch.some((p) => p.locked || p.alone) ? undefined : this.deps.head.assumedHead;
    const pooled = await this.deps.pool.connect();
    const scope = batch[0]?.opts.traceScope;
    const client = scope ? scopedClient(pooled, scope) : pooled;
    let broken: Error | undefined;
    try {
      let head: Head;
      let state: IndexedState;
      if (assumed) ({ head, state } = assumed);
      else {
        await client.query('BEGIN');
        const headRow = await client.query<Head>('SELECT revision, hash FROM mesh_head WHERE id FOR UPDATE');
        head = headRow.rows[0]!;
        state = await this.deps.head.load(client, head);
      }
      const base = head.revision;
      const results: (AppendResult | Error)[] = [];
      const prepares: PreparedAppend[] = [];
      const touched = new Set<string>();
      const keys = new Map<string, { cs: ChangeSet; fingerprint: string | undefined }>();
      for (const p of batch) {
        try {
          const keyOf = p.opts.idempotencyKey ? `${p.opts.actor}\u0000${p.opts.idempotencyKey}` : undefined;
          if (keyOf) {
            const earlier = keys.get(keyOf);
            const fp = p.opts.idempotencyFingerprint;
            if (earlier?.fingerprint && fp && earlier.fingerprint !== fp) {
              throw new ConflictError(
                `idempotency key was already used by revision ${earlier.cs.revision} for a different request`,
                head.revision,
                [
                  {
                    path: 'idempotencyKey',
                    message: `used by revision ${earlier.cs.revision} with another body`,
                  },
                ],
              );
            }
            // Optimistically this reads after the assumed head: a key written since moved the head too.
            const seen = earlier?.cs ?? (await this.deps.findIdempotent(p.opts, client));
            if (seen) {
              results.push({ status: 'replayed', changeSet: seen });
              continue;
            }
          }
          const prepared = prepareAppend(
            state.state,
            head,
            p.changes,
            p.opts,
            this.deps.cluster,
            state.view(),
          );
          if (!prepared) {
            results.push({ status: 'unchanged', headRevision: head.revision });
            continue;
          }
          // Later requests in the batch validate against this one's result.
          const cs = prepared.changeSet;
          this.deps.head.apply(cs.events, cs.revision, cs.hash);
          for (const e of cs.events) touched.add(refKey(e));
          head = { revision: cs.revision, hash: cs.hash };
          if (keyOf) keys.set(keyOf, { cs, fingerprint: p.opts.idempotencyFingerprint });
          prepares.push(prepared);
          results.push({ status: 'appended', changeSet: cs });
        } catch (err) {
          if (!(err instanceof MeshError)) throw err;
          results.push(err);
        }
      }
      const committed = prepares.map((x) => x.changeSet);
      // A refusal decided against an assumed head may be stale: only a locked run may answer it.
      if (assumed && results.some((r) => r instanceof MeshError)) throw new HeadMoved();
      if (
        assumed &&
        prepares.length === 0 &&
        results.some((r) => 'status' in r && r.status === 'unchanged')
      ) {
        // "Nothing to change" against an assumed head holds only if that head is still the head.
        const now = await client.query<{ revision: number }>('SELECT revision FROM mesh_head WHERE id');
        if (now.rows[0]!.revision !== base) throw new HeadMoved();
      }
      if (prepares.length > 0) {
        // In autocommit the write is its own commit: once sent, its outcome may be unknown.
        if (assumed) phase.attempt = { results, committed };
        let moved: boolean;
        try {
          moved = await writeChangeSets(client, prepares, projectionDelta(state, touched), base);
        } catch (err) {
          if (isConnectionError(err)) throw err;
          throw new BatchStatementFailed(err);
        }
        if (!moved) throw new HeadMoved();
      }
      if (!assumed) {
        if (committed.length === 0) await client.query('ROLLBACK');
        else {
          phase.commitSent = true;
          await client.query('COMMIT');
        }
      }
      return { results, committed };
    } catch (err) {
      if (isConnectionError(err)) broken = err as Error;
      else if (!assumed) await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      // A broken client goes back marked, so the pool discards it.
      pooled.release(broken);
    }
  }

  /**
   * Whether a change set whose autocommitted write lost its connection is in
   * the log. Under the head lock no write is in flight any more (the guarded
   * head UPDATE holds that lock until its statement ends), so the answer is final.
   */
  private async isCommitted(changeId: string): Promise<boolean> {
    const client = await this.deps.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      await client.query('SELECT revision FROM mesh_head WHERE id FOR UPDATE');
      const res = await client.query('SELECT 1 FROM change_sets WHERE change_id = $1', [changeId]);
      await client.query('ROLLBACK');
      return res.rowCount === 1;
    } catch (err) {
      if (isConnectionError(err)) broken = err as Error;
      throw err;
    } finally {
      client.release(broken);
    }
  }
}

/** The projection rows the batch leaves: each touched resource as the head state now holds it. */
function projectionDelta(state: IndexedState, touched: Set<string>): ProjectionDelta {
  const delta: ProjectionDelta = { puts: [], deletes: [] };
  for (const key of touched) {
    const r = state.state.resources.get(key);
    if (r) delta.puts.push(r);
    else delta.deletes.push(parseRefKey(key));
  }
  return delta;
}

/** `client` whose query calls run in `scope` (AppendOptions.traceScope); everything else is the client's. */
function scopedClient(client: pg.PoolClient, scope: <T>(fn: () => T) => T): pg.PoolClient {
  const query = ((...args: Parameters<pg.PoolClient['query']>) =>
    scope(() => (client.query as (...a: unknown[]) => unknown)(...args))) as pg.PoolClient['query'];
  return new Proxy(client, {
    get: (target, prop) => (prop === 'query' ? query : Reflect.get(target, prop, target)),
  });
}
