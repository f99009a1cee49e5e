/** Phase 1: EventStore.append against plain INSERT transactions on a copy of the log tables. */
import { createHash, randomUUID } from 'node:crypto';
import { EventStore } from '@meshplane/event-store';
import type { TestDatabase } from '../../test/harness/db';
import {
  benchClient,
  benchPool,
  checkpoint,
  formatMs,
  profileStatements,
  progress,
  round,
  runConcurrent,
  runInterleaved,
  type StatementStats,
  summarize,
  type ThroughputResult,
} from '../lib';
import { type Args, CS_COLUMNS, rawEventsInsert } from './common';
import { type GroupCommitMode, type GroupCommitPrototype, openGroupCommitPrototype } from './what-if';
import { appendOpts, WorkloadStream } from './workload';

/** A copy of the log tables (same columns, constraints, indexes and foreign keys), no triggers. */
export async function createRawTables(url: string): Promise<void> {
  const c = benchClient(url);
  await c.connect();
  try {
    await c.query(`
      CREATE SCHEMA raw;
      CREATE TABLE raw.change_sets (LIKE public.change_sets INCLUDING ALL);
      ALTER TABLE raw.change_sets ADD FOREIGN KEY (restored_from_revision) REFERENCES raw.change_sets (revision);
      CREATE TABLE raw.events (LIKE public.events INCLUDING ALL);
      ALTER TABLE raw.events ADD FOREIGN KEY (revision) REFERENCES raw.change_sets (revision);
    `);
  } finally {
    await c.end();
  }
}

export interface WhatIfRun {
  path: string;
  per_s: number;
  ratio_vs_raw_in_this_run: number;
  latency_p50_ms: number;
  change_sets_per_commit: number | null;
}

export interface AppendPhase {
  whatIf: WhatIfRun[] | undefined;
  scaling: Record<string, number>;
  append: ThroughputResult;
  raw: ThroughputResult;
  appendProfile: Record<string, StatementStats> | undefined;
  rawProfile: Record<string, StatementStats> | undefined;
  appendProfileOps: number;
  rawProfileOps: number;
}

export function classifyAppend(sql: string): string | undefined {
  const s = sql.trimStart();
  if (s.startsWith('BEGIN')) return 'begin';
  if (s.startsWith('COMMIT')) return 'commit';
  if (s.startsWith('ROLLBACK')) return 'rollback';
  if (s.includes('FROM mesh_head WHERE id FOR UPDATE')) return 'lock_head (incl. wait)';
  if (s.startsWith('WITH hd AS') || s.startsWith('WITH cs AS')) return 'write_change_set';
  if (s.startsWith('SELECT revision, seq') && s.includes('FROM events')) return 'cache_catch_up';
  if (s.startsWith('SELECT kind, namespace, name, spec')) return 'cache_reload';
  if (s.includes('"snapshots"')) return 'snapshot';
  if (s.startsWith('INSERT INTO raw.change_sets')) return 'raw_insert_change_set';
  if (s.startsWith('INSERT INTO raw.events')) return 'raw_insert_events';
  return undefined;
}

export async function appendPhase(
  db: TestDatabase,
  args: Args,
  stream: WorkloadStream,
  t0: number,
): Promise<AppendPhase> {
  const n = args.eventsPerChange;
  const changeSet = () => stream.changeSet(n);
  // The raw tables have no projection: their rows come from a stream of their own, same shapes.
  const rawStream = new WorkloadStream(args.population);

  const store = await EventStore.open({
    databaseUrl: db.url,
    poolSize: args.writers + 2,
    applicationName: 'bench-append',
  });
  const raw = benchPool(db.url, args.writers, 'bench-raw');
  try {
    const appendOp = async (w: number) => {
      const res = await store.append(changeSet(), appendOpts(`bench-writer-${w}`, 'bench: scale out'));
      if (res.status !== 'appended') throw new Error(`append returned ${res.status}`);
    };

    let rawRevision = 0;
    const eventsSql = rawEventsInsert(n);
    const rawOp = async (w: number) => {
      const revision = ++rawRevision;
      const changes = rawStream.changeSet(n);
      const opts = appendOpts(`bench-writer-${w}`, 'bench: scale out');
      const hash = createHash('sha256').update(String(revision)).digest('hex');
      const evParams: unknown[] = [];
      changes.forEach((c, seq) => {
        evParams.push(revision, seq, c.kind, c.namespace, c.name, 'put', JSON.stringify(c.spec), null, null);
      });
      const client = await raw.connect();
      try {
        await client.query('BEGIN');
        await client.query(
          `INSERT INTO raw.change_sets (${CS_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7, NULL, '{}'::jsonb, $8, $9, $10, $11)`,
          [
            revision,
            randomUUID(),
            'local',
            opts.actor,
            opts.reason,
            opts.requestId,
            opts.traceContext,
            n,
            new Date(),
            hash,
            hash,
          ],
        );
        await client.query(eventsSql, evParams);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    };

    // Warm both paths, then alternate them in slices so load that comes and goes hits both alike.
    progress(t0, `append: ${args.writers} writers x change sets of ${n} Workload puts via EventStore.append`);
    progress(t0, `raw insert: ${args.writers} writers x BEGIN/INSERT change_sets/INSERT ${n} events/COMMIT`);
    for (const op of [appendOp, rawOp])
      await runConcurrent({ writers: args.writers, durationMs: args.warmup * 1000, op });
    const sliceMs = (args.duration * 1000) / args.rounds;
    const main = await runInterleaved(
      args.rounds,
      sliceMs,
      { append: { writers: args.writers, op: appendOp }, raw: { writers: args.writers, op: rawOp } },
      () => checkpoint(db.url),
    );
    const append = main.append;
    const rawResult = main.raw;
    for (const [label, r] of [
      ['append', append],
      ['raw insert', rawResult],
    ] as const)
      progress(
        t0,
        `${label}: ${r.ops} change sets in ${formatMs(r.elapsedMs)} (${args.rounds} slices) = ${r.perSecond.toFixed(0)}/s ` +
          `(latency p50 ${r.latencyMs.p50.toFixed(2)} ms, p99 ${r.latencyMs.p99.toFixed(2)} ms)`,
      );

    let appendProfile: Record<string, StatementStats> | undefined;
    let rawProfile: Record<string, StatementStats> | undefined;
    let appendProfileOps = 0;
    let rawProfileOps = 0;
    if (args.diagnostics) {
      // Short extra runs with every statement timed (not part of the reported rates).
      const dur = Math.min(3, args.duration) * 1000;
      const a = await profileStatements(classifyAppend, () =>
        runConcurrent({ writers: args.writers, durationMs: dur, op: appendOp }),
      );
      appendProfile = a.stats;
      appendProfileOps = a.value.ops;
      const r = await profileStatements(classifyAppend, () =>
        runConcurrent({ writers: args.writers, durationMs: dur, op: rawOp }),
      );
      rawProfile = r.stats;
      rawProfileOps = r.value.ops;
    }
    // How append throughput scales with concurrent writers (interleaved, so load hits each alike).
    const scaling: Record<string, number> = {};
    if (args.diagnostics) {
      const counts = [...new Set([1, 2, 4, args.writers])];
      const runs = await runInterleaved(
        2,
        1500,
        Object.fromEntries(counts.map((w) => [String(w), { writers: w, op: appendOp }])),
      );
      for (const [k, r] of Object.entries(runs)) scaling[k] = round(r.perSecond, 4);
      progress(t0, `append by concurrent writers: ${JSON.stringify(scaling)} (interleaved, 2 x 1.5 s each)`);
    }

    // What-if prototypes of the append path, interleaved with the real append() and the raw floor.
    let whatIf: WhatIfRun[] | undefined;
    if (args.diagnostics) {
      const modes: GroupCommitMode[] = ['per-change-set', 'one-statement'];
      const protos: GroupCommitPrototype[] = [];
      try {
        for (const mode of modes) protos.push(await openGroupCommitPrototype(db, mode, stream, n));
        const cases: Record<string, { writers: number; op: (w: number) => Promise<void> }> = {
          'append()': { writers: args.writers, op: appendOp },
          raw: { writers: args.writers, op: rawOp },
        };
        for (const p of protos) cases[p.mode] = { writers: args.writers, op: (w) => p.op(w) };
        const byName = new Map(protos.map((p) => [p.mode as string, p]));
        // Before each slice, untimed: each path catches up with what the others appended (a prototype
        // re-reads the state; append() does one append, which brings its cached head state up to date).
        const between = async (name: string) => {
          await byName.get(name)?.resync();
          if (name === 'append()') await appendOp(0);
          await checkpoint(db.url);
        };
        // Warm each prototype once, then measure.
        await runInterleaved(1, 500, cases, between);
        for (const p of protos) p.resetStats();
        const runs = await runInterleaved(2, 1500, cases, between);
        const verify = await store.verify();
        if (!verify.ok) throw new Error(`the what-if prototypes broke the chain: ${JSON.stringify(verify)}`);
        const rawRate = runs.raw!.perSecond;
        whatIf = Object.entries(runs).map(([name, r]) => {
          const p = byName.get(name);
          return {
            path: name,
            per_s: round(r.perSecond, 4),
            ratio_vs_raw_in_this_run: round(r.perSecond / rawRate, 3),
            latency_p50_ms: round(r.latencyMs.p50, 3),
            change_sets_per_commit: p ? round(summarize(p.batchSizes).mean, 3) : null,
          };
        });
        progress(
          t0,
          `what-if (interleaved, 2 x 1.5 s each): ${whatIf.map((w) => `${w.path} ${Math.round(w.per_s)}/s`).join(', ')}; ` +
            `chain ok over ${verify.to} revisions`,
        );
      } finally {
        for (const p of protos) await p.close();
      }
    }
    await store.flushSnapshots();
    return {
      whatIf,
      scaling,
      append,
      raw: rawResult,
      appendProfile,
      rawProfile,
      appendProfileOps,
      rawProfileOps,
    };
  } finally {
    await raw.end();
    await store.close();
  }
}
