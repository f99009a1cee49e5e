/**
 * What-if prototypes for the append path, measured by the event-store bench to
 * back its findings with numbers. They reuse the store's own prepareAppend and
 * writeChangeSet (or write exactly the same rows), so the log they produce is a
 * valid chain, checked with store.verify(). Neither is exactly what
 * EventStore.append does today.
 */
import { type Change, emptyState, evolveInPlace, type MeshState } from '@meshplane/domain';
import { EventStore, type Head } from '@meshplane/event-store';
import pg from 'pg';
import {
  deltaOf,
  type PreparedAppend,
  type ProjectionDelta,
  prepareAppend,
  writeChangeSet,
  writeChangeSets,
} from '../../libs/event-store/src/append';
import type { TestDatabase } from '../../test/harness/db';
import { benchPool } from '../lib';
import { appendOpts, type WorkloadStream } from './workload';

/**
 * - per-change-set: queued appends of one process, one transaction, one
 *   writeChangeSet round trip per change set, one COMMIT (the store's first
 *   group commit).
 * - one-statement: the same, but every queued change set in ONE statement
 *   through the store's own writeChangeSets, under BEGIN / FOR UPDATE / COMMIT
 *   (what GroupCommitter did before its optimistic autocommit path; it still
 *   does this when it has to take the lock).
 * The store's own path now writes that statement in autocommit, guarded on the
 * head it last saw; the real append() is measured next to these prototypes.
 */
export type GroupCommitMode = 'per-change-set' | 'one-statement';

interface QueuedAppend {
  changes: Change[];
  opts: ReturnType<typeof appendOpts>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export interface GroupCommitPrototype {
  mode: GroupCommitMode;
  /** One append: `eventsPerChange` puts from the shared stream, queued and group-committed. */
  op(writer: number): Promise<void>;
  /** Re-reads state and head from the log: other appenders wrote since this one last ran. */
  resync(): Promise<void>;
  /** Change sets per transaction, since the last `resetStats`. */
  batchSizes: number[];
  resetStats(): void;
  close(): Promise<void>;
}

/**
 * Appends from concurrent callers of one process go through a queue; one
 * drainer takes everything queued and writes each change set as its own
 * revision (own events, own chained hash) with one COMMIT for the lot. Only
 * one writing process is assumed between two `resync` calls.
 */
export async function openGroupCommitPrototype(
  db: TestDatabase,
  mode: GroupCommitMode,
  stream: WorkloadStream,
  eventsPerChange: number,
): Promise<GroupCommitPrototype> {
  const store = await EventStore.open({ databaseUrl: db.url, poolSize: 2, applicationName: `bench-${mode}` });
  const pool = benchPool(db.url, 1, `bench-${mode}`);
  let state: MeshState = emptyState();
  const queue: QueuedAppend[] = [];
  const batchSizes: number[] = [];
  let draining = false;

  /** Prepares the batch against the in-memory state, advancing it; returns the change sets to write. */
  const prepareBatch = (batch: QueuedAppend[], from: Head): PreparedAppend[] => {
    const out: PreparedAppend[] = [];
    let h = from;
    for (const item of batch) {
      const p = prepareAppend(state, h, item.changes, item.opts, store.cluster);
      if (!p) continue;
      for (const ev of p.changeSet.events) evolveInPlace(state, ev);
      state.revision = p.changeSet.revision;
      h = { revision: p.changeSet.revision, hash: p.changeSet.hash };
      out.push(p);
    }
    return out;
  };

  const writeBatch = async (client: pg.PoolClient, batch: QueuedAppend[]) => {
    await client.query('BEGIN');
    try {
      const h = (await client.query('SELECT revision, hash FROM mesh_head WHERE id FOR UPDATE')).rows[0];
      const locked: Head = { revision: Number(h.revision), hash: h.hash };
      if (locked.revision !== state.revision)
        throw new Error('the prototype assumes a single writing process');
      const prepared = prepareBatch(batch, locked);
      if (mode === 'per-change-set') for (const p of prepared) await writeChangeSet(client, p);
      else if (prepared.length > 0)
        await writeChangeSets(client, prepared, netDelta(prepared), locked.revision);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  };

  const drain = async () => {
    draining = true;
    while (queue.length > 0) {
      const batch = queue.splice(0, 64);
      const client = await pool.connect();
      try {
        await writeBatch(client, batch);
        batchSizes.push(batch.length);
        for (const item of batch) item.resolve();
      } catch (err) {
        for (const item of batch) item.reject(err);
      } finally {
        client.release();
      }
    }
    draining = false;
  };
  const submit = (changes: Change[], o: QueuedAppend['opts']) =>
    new Promise<void>((resolve, reject) => {
      queue.push({ changes, opts: o, resolve, reject });
      if (!draining) void drain();
    });

  const resync = async () => {
    state = await store.currentState();
  };
  await resync();
  return {
    mode,
    op: (w) => submit(stream.changeSet(eventsPerChange), appendOpts(`bench-writer-${w}`, `bench: ${mode}`)),
    resync,
    batchSizes,
    resetStats: () => {
      batchSizes.length = 0;
    },
    close: async () => {
      await pool.end();
      await store.close();
    },
  };
}

/** The projection rows a batch leaves: per resource, its last event in the batch wins. */
function netDelta(prepared: PreparedAppend[]): ProjectionDelta {
  const last = new Map<
    string,
    { put?: ProjectionDelta['puts'][number]; del?: ProjectionDelta['deletes'][number] }
  >();
  for (const p of prepared) {
    const d = deltaOf(p.changeSet);
    for (const r of d.puts) last.set(`${r.kind}/${r.namespace}/${r.name}`, { put: r });
    for (const r of d.deletes) last.set(`${r.kind}/${r.namespace}/${r.name}`, { del: r });
  }
  const delta: ProjectionDelta = { puts: [], deletes: [] };
  for (const v of last.values()) {
    if (v.put) delta.puts.push(v.put);
    if (v.del) delta.deletes.push(v.del);
  }
  return delta;
}
