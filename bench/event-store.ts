/**
 * `npm run bench -- event-store [--option=value ...]`
 *
 * Measures the event store against the same PostgreSQL in one run and writes
 * bench/results/event-store.json:
 *
 *  1. append:  change sets of N Workload puts from W concurrent writers through
 *              EventStore.append, against the floor: the same rows (one
 *              change_sets row + N events rows) inserted with plain
 *              BEGIN/INSERT/COMMIT by W writers into a copy of the same tables,
 *              no serialization.
 *  2. replay:  readRevisions over that whole log evolving a MeshState, against a
 *              plain SELECT of the same event rows.
 *  3. stateAt: on a log of 10k resources and 100k revisions with snapshots at the
 *              store's default interval, stateAt(random revision) against
 *              currentState().
 *
 * Each phase works in its own temporary database, dropped at the end (also on
 * failure or Ctrl-C). When a target is missed, the diagnostics section times
 * every statement of the append path to show where the time goes.
 */
import { migrateToLatest } from '@meshplane/event-store';
import { appendPhase, createRawTables, type WhatIfRun } from './event-store/append-phase';
import { DEFAULTS, RAW_SELECT, statementMeans, throughputDetails } from './event-store/common';
import { type SingleWriterProfile, singleWriterProfile } from './event-store/diagnostics';
import { replayPhase } from './event-store/replay-phase';
import { stateAtPhase } from './event-store/state-at-phase';
import { WorkloadStream } from './event-store/workload';
import {
  closeDetails,
  machineInfo,
  nowMs,
  parseArgs,
  printMachine,
  progress,
  round,
  roundSummary,
  serverVersion,
  showSettings,
  type Target,
  TempDatabases,
  targetMisses,
  writeAndPrint,
} from './lib';

const TARGETS: Record<string, Target> = {
  append_rate_ratio: { op: '>=', threshold: 0.5 },
  replay_rate_ratio: { op: '>=', threshold: 0.5 },
  state_at_ratio: { op: '<=', threshold: 10 },
};

// ------------------------------------------------------------------ main

type Profile = { count: number; mean_ms: number; per_op_ms: number };

/** Plain-language findings computed from the numbers (also printed under the table). */
function findings(m: Record<string, number>, d: Record<string, unknown>): string[] {
  const out: string[] = [];
  const diag = d.single_writer as SingleWriterProfile | undefined;
  const app = d.append as
    | {
        store: { bench_process_cpu_ms_per_op: number; machine_cpu_busy: number };
        raw_insert: { bench_process_cpu_ms_per_op: number; machine_cpu_busy: number };
      }
    | undefined;
  const prof = d.append_profile_8_writers as
    | { append_ops: number; append: Record<string, Profile>; raw_ops: number; raw?: Record<string, Profile> }
    | undefined;
  const scaling = d.append_per_s_by_writers as Record<string, number> | undefined;
  const whatIf = (d.what_if as { runs: WhatIfRun[] } | undefined)?.runs;
  const stateAt = d.state_at as
    | {
        breakdown?: Record<string, number>;
        replay_of_this_log?: { replay_rate_ratio: number; replay_vs_raw_select_of_both: number };
      }
    | undefined;

  if (diag) {
    const s = diag.steps_p50_ms;
    out.push(
      `one writer, one change set per transaction: the head lock is held ${diag.lock_hold_p50_ms} ms (p50: prepare ` +
        `${s.prepare_js} + write ${s.write} + commit ${s.commit} ms + the FOR UPDATE reply), a ceiling of ` +
        `~${Math.round(diag.serialized_ceiling_per_s)} transactions/s; end to end append() ${diag.append_latency_p50_ms} ms ` +
        `vs a raw transaction ${diag.raw_txn_latency_p50_ms} ms.`,
    );
    const exec = diag.explain_write_change_set.find((l) => l.startsWith('Execution Time'));
    const plan = diag.explain_write_change_set.find((l) => l.startsWith('Planning Time'));
    if (exec && plan)
      out.push(
        `the write statement executes in ${exec.replace('Execution Time: ', '')} (${plan.toLowerCase()}); the rest of its ` +
          `${s.write} ms is parameter encoding, protocol and event-loop time. As a named prepared statement: ` +
          `${s.write_named_statement} ms (lock hold ${diag.lock_hold_named_statement_p50_ms} ms).`,
      );
  }
  if (prof) {
    const a = prof.append;
    // One write statement per group-committed batch; BEGIN / FOR UPDATE / COMMIT only when the store had to lock.
    const batches = a.write_change_set?.count ?? 0;
    const locked = a['lock_head (incl. wait)']?.count ?? 0;
    const perBatch = batches ? prof.append_ops / batches : 0;
    const catchUp = (a.cache_catch_up?.count ?? 0) + (a.cache_reload?.count ?? 0);
    out.push(
      `${prof.append_ops} appends from ${scaling ? Math.max(...Object.keys(scaling).map(Number)) : 8} writers made ` +
        `${batches} batches (${perBatch.toFixed(2)} change sets per write statement), ${locked} of them under the ` +
        `head lock; per append: write ${a.write_change_set?.per_op_ms ?? 0} ms, lock ` +
        `${a['lock_head (incl. wait)']?.per_op_ms ?? 0} ms, commit ${a.commit?.per_op_ms ?? 0} ms; ${catchUp} cache ` +
        `catch-up or reload queries.`,
    );
  }
  if (app)
    out.push(
      `CPU: the bench process spent ${app.store.bench_process_cpu_ms_per_op} ms per append() vs ` +
        `${app.raw_insert.bench_process_cpu_ms_per_op} ms per raw transaction; all cores were ` +
        `${Math.round(app.store.machine_cpu_busy * 100)}% / ${Math.round(app.raw_insert.machine_cpu_busy * 100)}% busy ` +
        '(every process on the machine counted).',
    );
  if (scaling && Object.keys(scaling).length > 1)
    out.push(
      `append() by concurrent writers (one store): ${Object.entries(scaling)
        .map(([w, r]) => `${w}: ${Math.round(r)}/s`)
        .join(', ')}.`,
    );
  if (whatIf?.length)
    out.push(
      'what-if, interleaved with the floor: ' +
        whatIf
          .map(
            (w) =>
              `${w.path} ${Math.round(w.per_s)}/s (${w.ratio_vs_raw_in_this_run} of raw` +
              `${w.change_sets_per_commit ? `, ${w.change_sets_per_commit} per COMMIT` : ''})`,
          )
          .join('; ') +
        '.',
    );
  const big = stateAt?.replay_of_this_log;
  if (big && big.replay_rate_ratio < 0.5)
    out.push(
      `on the 100k-revision log (one event per change set) replay reaches ${big.replay_rate_ratio} of a plain SELECT ` +
        'of the events: readRevisions also reads and maps one change_sets row (15 columns) per event there; against ' +
        `plain SELECTs of both tables it reaches ${big.replay_vs_raw_select_of_both}.`,
    );
  const bd = stateAt?.breakdown;
  if (bd)
    out.push(
      `stateAt: reading + hashing + decoding the nearest snapshot (${bd.snapshot_resources} resources, ` +
        `${Math.round((bd.snapshot_bytes ?? 0) / 1024)} KiB) takes ${bd.snapshot_read_decode_p50_ms} ms, the events ` +
        `after it ${bd.event_rows_read_p50_ms} ms to read and ${bd.apply_p50_ms} ms to apply (p50). Writing a snapshot ` +
        `costs the appending process ${bd.snapshot_encode_and_hash_ms} ms of CPU (encode + hash) every interval.`,
    );
  out.push(...targetMisses(m, TARGETS, ': see the findings above and details.'));
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), DEFAULTS);
  const startedAt = new Date();
  const t0 = nowMs();
  const dbs = new TempDatabases();
  let exitCode = 0;
  try {
    // ---- append + replay, one database
    const dbA = await dbs.create('bench_es_append');
    const pgVersion = await serverVersion(dbA.url);
    const machine = machineInfo(pgVersion);
    progress(t0, `event-store bench on ${printMachine(machine)}; database ${dbA.name}`);
    const settings = await showSettings(dbA.url, [
      'shared_buffers',
      'synchronous_commit',
      'fsync',
      'wal_sync_method',
      'commit_delay',
      'full_page_writes',
      'max_wal_size',
      'jit',
    ]);
    await migrateToLatest(dbA.url);
    await createRawTables(dbA.url);

    const stream = new WorkloadStream(args.population);
    const ap = await appendPhase(dbA, args, stream, t0);
    const rp = await replayPhase(dbA, args, t0);
    const single = args.diagnostics ? await singleWriterProfile(dbA, args, stream) : undefined;
    if (single)
      progress(
        t0,
        `diagnostics: lock hold p50 ${single.lock_hold_p50_ms} ms ${JSON.stringify(single.steps_p50_ms)}`,
      );
    await dbs.drop(dbA);

    // ---- stateAt, another database
    const dbB = await dbs.create('bench_es_state_at');
    await migrateToLatest(dbB.url);
    const sp = await stateAtPhase(dbB, args, t0);
    await dbs.drop(dbB);

    const metrics: Record<string, number> = {
      append_per_s: round(ap.append.perSecond, 4),
      raw_insert_txn_per_s: round(ap.raw.perSecond, 4),
      append_rate_ratio: round(ap.append.perSecond / ap.raw.perSecond, 3),
      replay_events_per_s: round(rp.replay, 4),
      raw_select_rows_per_s: round(rp.select, 4),
      replay_rate_ratio: round(rp.replay / rp.select, 3),
      state_at_p50_ms: round(sp.stateAt.p50, 4),
      current_state_p50_ms: round(sp.current.p50, 4),
      state_at_ratio: round(sp.stateAt.p50 / sp.current.p50, 3),
    };
    const details: Record<string, unknown> = {
      append: {
        store: throughputDetails(ap.append),
        raw_insert: throughputDetails(ap.raw),
        events_per_s: round(ap.append.perSecond * args.eventsPerChange, 4),
        raw_events_per_s: round(ap.raw.perSecond * args.eventsPerChange, 4),
      },
      append_per_s_by_writers: ap.scaling,
      append_profile_8_writers: ap.appendProfile && {
        note: 'extra timed runs; per-statement time from call to result, includes lock waits and WAL flush',
        append_ops: ap.appendProfileOps,
        append: statementMeans(ap.appendProfile, ap.appendProfileOps),
        raw_ops: ap.rawProfileOps,
        raw: ap.rawProfile && statementMeans(ap.rawProfile, ap.rawProfileOps),
      },
      single_writer: single,
      what_if: ap.whatIf && {
        note:
          "prototypes in bench/event-store/what-if.ts, built on the store's prepareAppend and write statements: the " +
          'appends of one process are queued and each queued change set is written as its own revision (own events, ' +
          'own chained hash), one COMMIT per batch; per-change-set = one writeChangeSet round trip per change set ' +
          '(the first group commit), one-statement = the whole batch through writeChangeSets (what GroupCommitter ' +
          'does now). Interleaved with ' +
          'the real append() and the raw floor (2 x 1.5 s each), verify() ok afterwards.',
        runs: ap.whatIf,
      },
      replay: {
        log_revisions: rp.head,
        log_events: rp.events,
        replay_events_per_s_runs: rp.replayRates.map((x) => round(x, 4)),
        raw_select_rows_per_s_runs: rp.selectRates.map((x) => round(x, 4)),
        raw_select: `${RAW_SELECT} -- 500-revision windows, one connection, pg's default row parsing`,
      },
      state_at: {
        build: sp.info,
        state_at_ms: roundSummary(sp.stateAt, 4),
        current_state_ms: roundSummary(sp.current, 4),
        revisions_replayed_after_snapshot: roundSummary(sp.replayedAfterSnapshot, 4),
        breakdown: sp.breakdown,
        replay_of_this_log: sp.bigReplay,
      },
      postgres_settings: settings,
    };
    closeDetails(metrics, details, findings);
    writeAndPrint(
      {
        benchmark: 'event-store',
        metrics,
        targets: TARGETS,
        params: {
          ...args,
          append_path: 'one EventStore (pool of writers + 2) shared by the writers, as in one API process',
          append_change_set: `${args.eventsPerChange} Workload puts (realistic specs, 127.0.1.x) over a population of ${args.population}: first created, then updated in turn; actor/reason/request id/traceparent set`,
          raw_insert: `BEGIN; INSERT raw.change_sets (1 row); INSERT raw.events (${args.eventsPerChange} rows, one multi-row VALUES); COMMIT -- copy of the log tables, no triggers, revisions from a JS counter`,
          snapshot_interval: sp.info.snapshot_interval,
        },
        details,
        machine,
        startedAt,
        durationMs: nowMs() - t0,
      },
      `event-store on ${printMachine(machine)}`,
    );
  } catch (err) {
    process.stderr.write(`event-store bench failed: ${(err as Error).stack ?? String(err)}\n`);
    exitCode = 1;
  } finally {
    await dbs.dropAll();
  }
  process.exitCode = exitCode;
}

if (require.main === module) void main();
