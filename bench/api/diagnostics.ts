/**
 * Where the time of the api benchmark goes, from extra runs that are not in the rates: the main
 * thread under the V8 CPU profiler, and every pg statement of the group commit timed from call to
 * result with the event-loop delay sampled.
 */
import os from 'node:os';
import path from 'node:path';
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { profileStatements, round, type StatementStats } from '../lib';
import { type ProfileSummary, summarizeProfile, withCpuProfile } from '../lib/cpu-profile';
import type { AppendRun, HttpRun } from './paths';

/** Function names whose inclusive share of the API thread is reported from the profile. */
const PROFILE_MARKS = [
  'submit',
  'canActivate',
  'authenticate',
  'parseInput',
  'toChanges',
  'validateChangeSet',
  'jsonParser',
  'requestContext',
  'handle',
  'parserOnHeadersComplete',
  'processTicksAndRejections',
  'writeChangeSet',
  'prepareAppend',
];

export function profileDetails(s: ProfileSummary, ops: number) {
  const perOp = (rec: Record<string, number>, limit: number) =>
    Object.fromEntries(
      Object.entries(rec)
        .slice(0, limit)
        .map(([k, v]) => [k, round(v / ops, 3)]),
    );
  return {
    ops,
    sampled_ms: s.totalMs,
    busy_ms: s.busyMs,
    busy_ms_per_op: round(s.busyMs / ops, 3),
    self_ms_per_op_by_group: perOp(s.selfByGroup, 20),
    inclusive_ms_per_op_by_group: perOp(s.inclusiveByGroup, 20),
    inclusive_ms_per_op_by_function: perOp(s.marks, 20),
    top_self_functions_ms: s.topSelf,
  };
}

function classifyStatement(sql: string): string | undefined {
  const s = sql.trimStart();
  if (s.startsWith('BEGIN')) return 'begin';
  if (s.startsWith('COMMIT')) return 'commit';
  if (s.startsWith('ROLLBACK')) return 'rollback';
  if (s.includes('FROM mesh_head WHERE id FOR UPDATE')) return 'lock_head';
  if (s.startsWith('WITH hd AS')) return 'write_change_set';
  return undefined;
}

/** Runs `fn` while sampling this thread's event-loop delay (1 ms resolution). */
async function withLoopDelay<T>(fn: () => Promise<T>): Promise<{ value: T; delay: IntervalHistogram }> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  try {
    return { value: await fn(), delay: h };
  } finally {
    h.disable();
  }
}

/**
 * The store writes each group-committed batch with one statement: in autocommit when it builds on
 * the head it last saw (one round trip), under BEGIN / FOR UPDATE / COMMIT when it had to look.
 */
export function statementDetails(
  ops: number,
  stats: Record<string, StatementStats>,
  delay: IntervalHistogram,
) {
  const batches = stats.write_change_set?.count ?? 0;
  const locked = stats.lock_head?.count ?? 0;
  const mean = (k: string) => round(stats[k]?.meanMs ?? 0, 3);
  const total = (keys: string[]) => keys.reduce((a, k) => a + (stats[k]?.totalMs ?? 0), 0);
  const allMs = total(['begin', 'lock_head', 'write_change_set', 'commit', 'rollback']);
  return {
    ops,
    batches,
    batches_under_lock: locked,
    change_sets_per_batch: batches ? round(ops / batches, 3) : null,
    mean_ms: {
      begin: mean('begin'),
      lock_head: mean('lock_head'),
      write_change_set: mean('write_change_set'),
      commit: mean('commit'),
    },
    statement_ms_per_batch: batches ? round(allMs / batches, 3) : null,
    statement_ms_per_change: round(allMs / ops, 3),
    statements: Object.fromEntries(
      Object.entries(stats).map(([k, v]) => [k, { count: v.count, mean_ms: round(v.meanMs, 3) }]),
    ),
    event_loop_delay_ms: {
      p50: round(delay.percentile(50) / 1e6, 3),
      p99: round(delay.percentile(99) / 1e6, 3),
      max: round(delay.max / 1e6, 3),
    },
  };
}

/** One profiled run of `seconds` per path, the API thread (this one) under the V8 sampling profiler. */
export async function profilePaths(
  runHttp: HttpRun,
  runAppend: AppendRun,
  seconds: number,
): Promise<Record<string, unknown>> {
  const dir = os.tmpdir();
  const ms = seconds * 1000;
  const ph = await withCpuProfile(() => runHttp(ms), {
    file: path.join(dir, `bench-api-http-${process.pid}.cpuprofile`),
  });
  const pa = await withCpuProfile(() => runAppend(ms), {
    file: path.join(dir, `bench-api-append-${process.pid}.cpuprofile`),
  });
  const opts = { top: 25, marks: PROFILE_MARKS, minGroupMs: 1 };
  return {
    note:
      'extra runs (not in the rates), main thread only (the API server; the clients are in a worker), ' +
      'V8 sampling profiler at 200 us; ms per change. Raw .cpuprofile files: ' +
      `${path.join(dir, `bench-api-{http,append}-${process.pid}.cpuprofile`)}`,
    http_per_s_while_profiled: round((ph.value.ops * 1000) / ph.value.elapsedMs, 4),
    append_per_s_while_profiled: round((pa.value.ops * 1000) / pa.value.elapsedMs, 4),
    http: profileDetails(summarizeProfile(ph.profile, opts), ph.value.ops),
    append: profileDetails(summarizeProfile(pa.profile, opts), pa.value.ops),
  };
}

/** One run of `seconds` per path with every statement of the group commit timed, inside the head lock. */
export async function timeStatements(
  runHttp: HttpRun,
  runAppend: AppendRun,
  seconds: number,
): Promise<Record<string, unknown>> {
  const ms = seconds * 1000;
  const sh = await withLoopDelay(() => profileStatements(classifyStatement, () => runHttp(ms)));
  const sa = await withLoopDelay(() => profileStatements(classifyStatement, () => runAppend(ms)));
  return {
    note:
      'extra runs (not in the rates): every pg query of this process timed from call to result, which ' +
      "includes the wait for this thread's event loop to pick the result up: a busy loop stretches every " +
      'round trip of a group-committed batch (one autocommitted write statement, or BEGIN, lock, write, COMMIT ' +
      'when the store had to take the head lock). Event-loop delay of the main thread sampled every 1 ms.',
    http: statementDetails(sh.value.value.ops, sh.value.stats, sh.delay),
    append: statementDetails(sa.value.value.ops, sa.value.stats, sa.delay),
  };
}
