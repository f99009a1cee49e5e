import { ConflictError, type IndexedState, MeshError, parseRefKey, refKey } from '@meshplane/domain';
import type pg from 'pg';
import { type PreparedAppend, type ProjectionDelta, prepareAppend, writeChangeSets } from './append';
import { isConnectionError } from './connection';
import type { HeadCache } from './head-cache';
import type { AppendOptions, AppendResult, Change, ChangeSet } from './types';

interface Pending {
  changes: Change[];
  opts: AppendOptions;
  resolve: (r: AppendResult) => void;
  reject: (e: unknown) => void;
  attempts: number;
  /** Set after a batched statement failed: commit this request in a batch of its own. */
  alone?: boolean;
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
  /** Called once per appended change set, after its batch committed. */
  onCommitted(cs: ChangeSet): void;
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
    const phase = { commitSent: false };
    try {
      const { results, committed } = await this.commit(batch, phase);
      for (const cs of committed) this.deps.onCommitted(cs);
      batch.forEach((p, i) => {
        const r = results[i]!;
        if (r instanceof Error || !('status' in r)) p.reject(r);
        else p.resolve(r);
      });
    } catch (err) {
      // Whatever the batch wrote was rolled back (or its fate is unknown): the
      // cached head may hold its tentative events, so it is dropped.
      this.deps.head.invalidate();
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

  private async commit(
    batch: Pending[],
    phase: { commitSent: boolean },
  ): Promise<{ results: (AppendResult | Error)[]; committed: ChangeSet[] }> {
    const client = await this.deps.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const headRow = await client.query<{ revision: number; hash: string }>(
        'SELECT revision, hash FROM mesh_head WHERE id FOR UPDATE',
      );
      let head = headRow.rows[0]!;
      const state = await this.deps.head.load(client, head.revision);
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
          this.deps.head.apply(cs.events, cs.revision);
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
      if (prepares.length > 0) {
        try {
          await writeChangeSets(client, prepares, projectionDelta(state, touched));
        } catch (err) {
          if (isConnectionError(err)) throw err;
          throw new BatchStatementFailed(err);
        }
      }
      const committed = prepares.map((x) => x.changeSet);
      if (committed.length === 0) {
        await client.query('ROLLBACK');
      } else {
        phase.commitSent = true;
        await client.query('COMMIT');
      }
      return { results, committed };
    } catch (err) {
      if (isConnectionError(err)) broken = err as Error;
      else await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      // A broken client goes back marked, so the pool discards it.
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
