/** Where one append's time goes: the append transaction replayed step by step. */
import { randomUUID } from 'node:crypto';
import { type CommittedEvent, evolveInPlace, type MeshState } from '@meshplane/domain';
import { EventStore } from '@meshplane/event-store';
import pg from 'pg';
import { prepareAppend, writeChangeSet } from '../../libs/event-store/src/append';
import type { TestDatabase } from '../../test/harness/db';
import { benchPool, median, nowMs, round, timed } from '../lib';
import { type Args, CS_COLUMNS, rawEventsInsert } from './common';
import { appendOpts, WorkloadStream } from './workload';

export interface SingleWriterProfile {
  ops: number;
  /** Medians in ms of each step of the append transaction, replicated with the store's own functions. */
  steps_p50_ms: Record<string, number>;
  lock_hold_p50_ms: number;
  serialized_ceiling_per_s: number;
  lock_hold_named_statement_p50_ms: number;
  append_latency_p50_ms: number;
  raw_txn_latency_p50_ms: number;
  explain_write_change_set: string[];
}

/**
 * Replays what EventStore.append does, step by step, with the store's own
 * prepareAppend and writeChangeSet, timing each step with one writer (no lock
 * wait). The lock on the head is held from the FOR UPDATE until COMMIT returns,
 * so 1 / (that) is the ceiling of serialized appends. Each iteration also times
 * one real EventStore.append and one raw transaction, interleaved, so that
 * load from other processes on the machine hits all three alike.
 */
export async function singleWriterProfile(db: TestDatabase, args: Args, stream: WorkloadStream) {
  const store = await EventStore.open({ databaseUrl: db.url, poolSize: 2, applicationName: 'bench-diag' });
  const pool = benchPool(db.url, 1, 'bench-diag');
  const changeSet = () => stream.changeSet(args.eventsPerChange);
  const evolve = (state: MeshState, events: CommittedEvent[], revision: number) => {
    for (const ev of events) evolveInPlace(state, ev);
    state.revision = revision;
  };
  try {
    const state: MeshState = await store.currentState();
    // The store loads its in-memory state on its first append: do that before timing.
    const first = await store.append(changeSet(), appendOpts('bench-diag', 'bench: warm-up'));
    if (first.status === 'appended') evolve(state, first.changeSet.events, first.changeSet.revision);
    const steps: Record<string, number[]> = {
      begin: [],
      lock_head: [],
      prepare_js: [],
      write: [],
      commit: [],
      write_named_statement: [],
    };
    const hold: number[] = [];
    const holdNamed: number[] = [];
    const appendLat: number[] = [];
    const rawLat: number[] = [];
    const iterations = 150;
    const client = await pool.connect();
    // The store sends its write as a named (prepared) statement; this one strips the name to compare.
    type QueryConfig = { text: string; values: unknown[] };
    const unnamedClient = {
      query: (q: QueryConfig) => client.query(q.text, q.values),
    } as unknown as pg.PoolClient;
    try {
      let rawRevision = Number(
        (await client.query('SELECT coalesce(max(revision), 0) AS m FROM raw.change_sets')).rows[0].m,
      );
      for (let k = 0; k < iterations; k++) {
        // (a) the append transaction, step by step
        const changes = changeSet();
        const a = nowMs();
        await client.query('BEGIN');
        const b = nowMs();
        const head = (await client.query('SELECT revision, hash FROM mesh_head WHERE id FOR UPDATE')).rows[0];
        const c = nowMs();
        const prepared = prepareAppend(
          state,
          { revision: Number(head.revision), hash: head.hash },
          changes,
          appendOpts('bench-diag', 'bench: diagnostics'),
          store.cluster,
        );
        if (!prepared) throw new Error('diagnostic append was a no-op');
        // Every other iteration sends the write as a named (server-side prepared) statement.
        const named = k % 2 === 1;
        const d = nowMs();
        await writeChangeSet(named ? client : unnamedClient, prepared);
        const e = nowMs();
        await client.query('COMMIT');
        const f = nowMs();
        evolve(state, prepared.changeSet.events, prepared.changeSet.revision);
        if (named) {
          steps.write_named_statement!.push(e - d);
          holdNamed.push(f - c);
        } else {
          steps.begin!.push(b - a);
          steps.lock_head!.push(c - b);
          steps.prepare_js!.push(d - c);
          steps.write!.push(e - d);
          steps.commit!.push(f - e);
          hold.push(f - c);
        }

        // (b) one EventStore.append, end to end
        const r = await timed(() => store.append(changeSet(), appendOpts('bench-diag', 'bench: latency')));
        if (r.value.status !== 'appended') throw new Error(`append returned ${r.value.status}`);
        evolve(state, r.value.changeSet.events, r.value.changeSet.revision);
        appendLat.push(r.ms);

        // (c) one raw transaction with the same rows
        const revision = ++rawRevision;
        const rawChanges = changeSet();
        const params: unknown[] = [];
        rawChanges.forEach((ch, seq) => {
          params.push(
            revision,
            seq,
            ch.kind,
            ch.namespace,
            ch.name,
            'put',
            JSON.stringify(ch.spec),
            null,
            null,
          );
        });
        const o = appendOpts('bench-diag', 'bench: latency');
        const t = nowMs();
        await client.query('BEGIN');
        await client.query(
          `INSERT INTO raw.change_sets (${CS_COLUMNS}) VALUES ($1, $2, 'local', $3, $4, $5, NULL, NULL, $6, NULL, '{}'::jsonb, $7, $8, $9, $9)`,
          [
            revision,
            randomUUID(),
            o.actor,
            o.reason,
            o.requestId,
            o.traceContext,
            rawChanges.length,
            new Date(),
            'f'.repeat(64),
          ],
        );
        await client.query(rawEventsInsert(rawChanges.length), params);
        await client.query('COMMIT');
        rawLat.push(nowMs() - t);
      }

      // The plan of the single write statement, executed and rolled back.
      await client.query('BEGIN');
      const head = (await client.query('SELECT revision, hash FROM mesh_head WHERE id FOR UPDATE')).rows[0];
      const prepared = prepareAppend(
        state,
        { revision: Number(head.revision), hash: head.hash },
        changeSet(),
        appendOpts('bench-diag', 'bench: explain'),
        store.cluster,
      )!;
      const plan: string[] = [];
      const explaining = {
        query: async (q: QueryConfig) => {
          const r = await client.query(`EXPLAIN (ANALYZE, BUFFERS, SETTINGS) ${q.text}`, q.values);
          for (const row of r.rows) plan.push(row['QUERY PLAN'] as string);
          return r;
        },
      } as unknown as pg.PoolClient;
      await writeChangeSet(explaining, prepared);
      await client.query('ROLLBACK');

      const p50 = Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, round(median(v), 3)]));
      const holdP50 = median(hold);
      const out: SingleWriterProfile = {
        ops: iterations,
        steps_p50_ms: p50,
        lock_hold_p50_ms: round(holdP50, 3),
        serialized_ceiling_per_s: round(1000 / holdP50, 4),
        lock_hold_named_statement_p50_ms: round(median(holdNamed), 3),
        append_latency_p50_ms: round(median(appendLat), 3),
        raw_txn_latency_p50_ms: round(median(rawLat), 3),
        explain_write_change_set: plan,
      };
      return out;
    } finally {
      client.release();
    }
  } finally {
    await pool.end();
    await store.close();
  }
}
