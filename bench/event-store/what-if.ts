/**
 * What-if prototypes for the append path, measured by the event-store bench to
 * back its findings with numbers. They reuse the store's own prepareAppend and
 * writeChangeSet (or write exactly the same rows), so the log they produce is a
 * valid chain, checked with store.verify(). None of this is what
 * EventStore.append does today.
 */
import { type Change, emptyState, evolveInPlace, type MeshState } from '@meshplane/domain';
import { EventStore, type Head } from '@meshplane/event-store';
import pg from 'pg';
import { type PreparedAppend, prepareAppend, writeChangeSet } from '../../libs/event-store/src/append';
import type { TestDatabase } from '../../test/harness/db';
import { benchPool } from '../lib';
import { appendOpts, type WorkloadStream } from './workload';

/**
 * - per-change-set: queued appends of one process, one transaction, one
 *   writeChangeSet round trip per change set, one COMMIT.
 * - one-statement: the same, but every queued change set in ONE statement.
 * - one-statement-autocommit: no BEGIN / FOR UPDATE: the statement moves the
 *   head only if it still is where the in-memory state says (a guarded UPDATE),
 *   so the head row is locked only while the statement runs and commits.
 */
export type GroupCommitMode = 'per-change-set' | 'one-statement' | 'one-statement-autocommit';

interface QueuedAppend {
  changes: Change[];
  opts: ReturnType<typeof appendOpts>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

const CS_COLUMNS =
  'revision, change_id, cluster, actor, reason, request_id, idempotency_key, idempotency_fingerprint, ' +
  'trace_context, restored_from_revision, metadata, event_count, created_at, prev_hash, hash';

/**
 * Several prepared change sets (consecutive revisions) in one statement: the
 * same rows writeChangeSet writes for each, the projection's net effect, the
 * head moved to the last one. With `guard`, nothing is written unless the head
 * still is `guard`; returns whether it was written.
 */
export async function writeChangeSetsInOneStatement(
  client: pg.ClientBase,
  batch: PreparedAppend[],
  guard?: Head,
): Promise<boolean> {
  const css = batch.map((p) => p.changeSet);
  const last = css[css.length - 1]!;
  const events = css.flatMap((cs) => cs.events);
  // One upsert or delete per resource: its last event in the batch wins.
  const net = new Map<string, (typeof events)[number]>();
  for (const e of events) net.set(`${e.kind}/${e.namespace}/${e.name}`, e);
  const puts = [...net.values()].filter((e) => e.op === 'put');
  const dels = [...net.values()].filter((e) => e.op === 'delete');
  const res = await client.query<{ moved: number }>(
    `WITH hd AS (
       UPDATE mesh_head SET revision = $1, hash = $2
       WHERE id AND ($3::bigint IS NULL OR revision = $3) AND ($4::text IS NULL OR hash = $4)
       RETURNING 1
     ),
     cs AS (
       INSERT INTO change_sets (${CS_COLUMNS})
       SELECT * FROM unnest($5::bigint[], $6::uuid[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
         $12::text[], $13::text[], $14::bigint[], $15::text[]::jsonb[], $16::int[], $17::timestamptz[], $18::text[],
         $19::text[])
       WHERE EXISTS (SELECT 1 FROM hd)
     ), ev AS (
       INSERT INTO events (revision, seq, kind, namespace, name, op, spec, prev_version, origin)
       SELECT * FROM unnest($20::bigint[], $21::int[], $22::text[], $23::text[], $24::text[], $25::text[],
         $26::text[]::jsonb[], $27::bigint[], $28::text[])
       WHERE EXISTS (SELECT 1 FROM hd)
     ), up AS (
       INSERT INTO resources (kind, namespace, name, spec, version, origin)
       SELECT * FROM unnest($29::text[], $30::text[], $31::text[], $32::text[]::jsonb[], $33::bigint[], $34::text[])
       WHERE EXISTS (SELECT 1 FROM hd)
       ON CONFLICT (kind, namespace, name)
       DO UPDATE SET spec = excluded.spec, version = excluded.version, origin = excluded.origin
     ), del AS (
       DELETE FROM resources r USING unnest($35::text[], $36::text[], $37::text[]) AS d(k, ns, n)
       WHERE r.kind = d.k AND r.namespace = d.ns AND r.name = d.n AND EXISTS (SELECT 1 FROM hd)
     )
     SELECT (SELECT count(*) FROM hd)::int AS moved,
       CASE WHEN EXISTS (SELECT 1 FROM hd) THEN pg_notify('mesh_revisions', $1::text) END AS notified`,
    [
      last.revision,
      last.hash,
      guard?.revision ?? null,
      guard?.hash ?? null,
      css.map((c) => c.revision),
      css.map((c) => c.changeId),
      css.map((c) => c.cluster),
      css.map((c) => c.actor),
      css.map((c) => c.reason),
      css.map((c) => c.requestId),
      css.map((c) => c.idempotencyKey),
      batch.map((p) => p.idempotencyFingerprint),
      css.map((c) => c.traceContext),
      css.map((c) => c.restoredFromRevision),
      css.map((c) => JSON.stringify(c.metadata)),
      css.map((c) => c.eventCount),
      css.map((c) => c.createdAt.toISOString()),
      css.map((c) => c.prevHash),
      css.map((c) => c.hash),
      events.map((e) => e.revision),
      events.map((e) => e.seq),
      events.map((e) => e.kind),
      events.map((e) => e.namespace),
      events.map((e) => e.name),
      events.map((e) => e.op),
      events.map((e) => (e.op === 'put' ? JSON.stringify(e.spec ?? {}) : null)),
      events.map((e) => e.prevVersion),
      events.map((e) => e.origin ?? null),
      puts.map((e) => e.kind),
      puts.map((e) => e.namespace),
      puts.map((e) => e.name),
      puts.map((e) => JSON.stringify(e.spec ?? {})),
      puts.map((e) => e.revision),
      puts.map((e) => e.origin ?? null),
      dels.map((e) => e.kind),
      dels.map((e) => e.namespace),
      dels.map((e) => e.name),
    ],
  );
  return res.rows[0]!.moved === 1;
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
  let head: Head = { revision: 0, hash: '' };
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
    if (mode === 'one-statement-autocommit') {
      const prepared = prepareBatch(batch, head);
      if (prepared.length === 0) return;
      if (!(await writeChangeSetsInOneStatement(client, prepared, head)))
        throw new Error('the head moved: the prototype assumes a single writing process');
      const last = prepared[prepared.length - 1]!.changeSet;
      head = { revision: last.revision, hash: last.hash };
      return;
    }
    await client.query('BEGIN');
    try {
      const h = (await client.query('SELECT revision, hash FROM mesh_head WHERE id FOR UPDATE')).rows[0];
      const locked: Head = { revision: Number(h.revision), hash: h.hash };
      if (locked.revision !== state.revision)
        throw new Error('the prototype assumes a single writing process');
      const prepared = prepareBatch(batch, locked);
      if (mode === 'per-change-set') for (const p of prepared) await writeChangeSet(client, p);
      else if (prepared.length > 0) await writeChangeSetsInOneStatement(client, prepared);
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
    const h = await store.head();
    head = { revision: h.revision, hash: h.hash };
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
