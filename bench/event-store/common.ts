/** Options, SQL and small helpers shared by the event-store benchmark's phases. */
import { round, roundSummary, type StatementStats, type ThroughputResult } from '../lib';

/** Options of `npm run bench -- event-store` (`--writers=8`, `--events-per-change=10`, ...). */
export const DEFAULTS = {
  /** Concurrent writers for both the append and the raw-insert phases. */
  writers: 8,
  /** Events per change set in the append and raw-insert phases. */
  eventsPerChange: 10,
  /** Workloads in the append phase's mesh: first created, then updated in turn (the state stays this size). */
  population: 10_000,
  /** Seconds measured per throughput phase (after the warm-up), in `rounds` alternating slices. */
  duration: 10,
  rounds: 4,
  warmup: 1.5,
  /** Timed runs each of replay and raw select; the median is reported. */
  replayRuns: 5,
  /** Size of the stateAt log. */
  resources: 10_000,
  revisions: 100_000,
  /** Resources per change set in the initial load of the stateAt log. */
  seedBatch: 100,
  /** Seconds of single-resource updates through append() before the bulk generator writes the rest. */
  appendBudget: 30,
  /** Concurrent writers (and pool size - 2) while building the stateAt log through append(). */
  buildWriters: 8,
  /** Revisions per transaction of the bulk generator. */
  bulkBatch: 5_000,
  /** stateAt / currentState samples. */
  samples: 40,
  seed: 20_251_125,
  /** Diagnostics: statement profile, writer scaling, single-writer breakdown, what-if prototypes (`--diagnostics=false` skips them). */
  diagnostics: true,
};
export type Args = typeof DEFAULTS;

export const CS_COLUMNS =
  'revision, change_id, cluster, actor, reason, request_id, idempotency_key, idempotency_fingerprint, ' +
  'trace_context, restored_from_revision, metadata, event_count, created_at, prev_hash, hash';

export const EV_COLUMNS = 'revision, seq, kind, namespace, name, op, spec, prev_version, origin';

/** One multi-row INSERT of `n` events into the raw copy of the events table. */
export function rawEventsInsert(n: number): string {
  const rows = Array.from({ length: n }, (_, r) => {
    const b = r * 9;
    return `($${b + 1}, $${b + 2}, $${b + 3}, $${b + 4}, $${b + 5}, $${b + 6}, $${b + 7}::jsonb, $${b + 8}, $${b + 9})`;
  });
  return `INSERT INTO raw.events (${EV_COLUMNS}) VALUES ${rows.join(', ')}`;
}

export const RAW_SELECT = `SELECT ${EV_COLUMNS} FROM events WHERE revision >= $1 AND revision <= $2 ORDER BY revision, seq`;

export const RAW_SELECT_CHANGE_SETS = `SELECT ${CS_COLUMNS} FROM change_sets WHERE revision >= $1 AND revision <= $2 ORDER BY revision`;

export function statementMeans(stats: Record<string, StatementStats>, ops: number) {
  const out: Record<string, { count: number; mean_ms: number; per_op_ms: number }> = {};
  for (const [k, s] of Object.entries(stats))
    out[k] = { count: s.count, mean_ms: round(s.meanMs, 3), per_op_ms: round(s.totalMs / ops, 3) };
  return out;
}

export function throughputDetails(r: ThroughputResult) {
  return {
    ops: r.ops,
    elapsed_s: round(r.elapsedMs / 1000, 4),
    per_s: round(r.perSecond, 4),
    latency_ms: roundSummary(r.latencyMs, 3),
    bench_process_cpu_ms_per_op: round(r.cpu.processMs / r.ops, 3),
    machine_cpu_busy: round(r.cpu.machineBusyFraction, 3),
  };
}
