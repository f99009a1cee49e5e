/** Per-change samples of the propagation benchmark and their summaries (stages, profile, combinations). */
import { round, roundSummary, type Summary, summarize } from '../lib';
import type { ProfileSummary } from '../lib/cpu-profile';
import type { FloorResult } from './floor';
import type { GcPause, GcStats } from './gc';

export interface Sample {
  revision: number;
  call: number;
  commit: number;
  /** The first subscriber anywhere (main thread or a worker thread) that had the message. */
  published: number | undefined;
  /** The last worker thread whose own subscriber had it. */
  receivedAllThreads: number | undefined;
  first: number;
  all: number;
  /**
   * Per worker thread: (its last agent applied - the thread received it), its agent count, and
   * over that span its time on a core and waiting for one (Linux schedstat; absent elsewhere).
   */
  threads: { spanMs: number; agents: number; runMs?: number; waitMs?: number }[];
  applyMs: number[];
  /** Machine-wide /proc/stat steal over the change (all vCPUs, 10 ms ticks): the hypervisor's share. */
  stealMs?: number;
}

/** What the benchmark measures of one change: commit -> the last agent applied it. */
const latency = (x: Sample): number => x.all - x.commit;

/** Each change's latency in commit order: how it moves over a run (transients, spikes). */
const byChange = (samples: Sample[]): number[] => samples.map((x) => round(latency(x), 3));

/** GC pauses over the measured changes: worker thread index (or MAIN_THREAD, RELAY_THREAD), pause. */
export type WorkerPauses = Array<{ worker: number } & GcPause>;
export const MAIN_THREAD = -1;
export const RELAY_THREAD = -2;

export function stageSummaries(samples: Sample[], pauses: WorkerPauses = []) {
  const s = (xs: number[]): Summary | undefined => (xs.length ? roundSummary(summarize(xs), 4) : undefined);
  const pub = samples.filter((x) => x.published !== undefined) as (Sample & { published: number })[];
  const rec = samples.filter((x) => x.receivedAllThreads !== undefined) as (Sample & {
    published: number;
    receivedAllThreads: number;
  })[];
  const applies = samples.flatMap((x) => x.applyMs);
  return {
    commit_to_all_applied_ms: s(samples.map(latency))!,
    call_to_all_applied_ms: s(samples.map((x) => x.all - x.call))!,
    stages_ms: {
      append_call_to_committed: s(samples.map((x) => x.commit - x.call)),
      committed_to_published: s(pub.map((x) => x.published - x.commit)),
      published_to_received_by_every_thread: s(rec.map((x) => x.receivedAllThreads - x.published)),
      published_to_first_applied: s(pub.map((x) => x.first - x.published)),
      published_to_all_applied: s(pub.map((x) => x.all - x.published)),
      thread_received_to_its_last_agent_applied: s(samples.flatMap((x) => x.threads.map((t) => t.spanMs))),
    },
    /** (last applied - received) / agents, per thread: the agents of a thread take turns on its CPU. */
    thread_ms_per_agent: s(
      samples.flatMap((x) => x.threads.filter((t) => t.agents > 0).map((t) => t.spanMs / t.agents)),
    ),
    /** A thread's time on a core, and waiting for one, over its span: work vs. contention. */
    thread_run_ms: s(
      samples.flatMap((x) => x.threads.flatMap((t) => (t.runMs === undefined ? [] : [t.runMs]))),
    ),
    thread_wait_ms: s(
      samples.flatMap((x) => x.threads.flatMap((t) => (t.waitMs === undefined ? [] : [t.waitMs]))),
    ),
    agent_reconciler_apply_ms_integer: s(applies),
    /** Steal over all changes (ms, all vCPUs) and how many changes saw any. */
    steal: {
      total_ms: samples.reduce((a, x) => a + (x.stealMs ?? 0), 0),
      changes_with_steal: samples.filter((x) => (x.stealMs ?? 0) > 0).length,
    },
    slowest_changes: slowest(samples, 5, pauses),
    by_change_ms: byChange(samples),
  };
}

/** The warm-up changes (not measured): how long the start-up's effects lasted. */
export function warmupSummary(samples: Sample[]) {
  return {
    commit_to_all_applied_ms: roundSummary(summarize(samples.map(latency)), 4),
    by_change_ms: byChange(samples),
  };
}

/** The `n` slowest changes (commit -> all applied), stage by stage: what the p99 is made of. */
function slowest(samples: Sample[], n: number, pauses: WorkerPauses) {
  const r = (x: number | undefined) => (x === undefined ? null : round(x, 3));
  return [...samples]
    .sort((a, b) => latency(b) - latency(a))
    .slice(0, n)
    .map((x) => ({
      revision: x.revision,
      commit_to_all_applied: r(latency(x)),
      committed_to_published: r(x.published === undefined ? undefined : x.published - x.commit),
      published_to_received_by_every_thread: r(
        x.published === undefined || x.receivedAllThreads === undefined
          ? undefined
          : x.receivedAllThreads - x.published,
      ),
      thread_received_to_last_applied: x.threads.map((t) => r(t.spanMs)),
      // Of each span: ms on a core, ms waiting for one.
      thread_run_wait_ms: x.threads.map((t) => [r(t.runMs), r(t.waitMs)]),
      // GC pauses that overlapped commit -> all applied, ms per thread (worker index or main).
      gc_ms: gcOverlap(pauses, x.commit, x.all),
      steal_ms: x.stealMs ?? null,
    }));
}

function gcOverlap(pauses: WorkerPauses, from: number, to: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of pauses) {
    const ms = Math.min(to, p.at + p.ms) - Math.max(from, p.at);
    const thread = p.worker === MAIN_THREAD ? 'main' : p.worker === RELAY_THREAD ? 'relay' : String(p.worker);
    if (ms > 0) out[thread] = round((out[thread] ?? 0) + ms, 2);
  }
  return out;
}

/** Agent-side function names whose inclusive time the worker profile reports. */
export const AGENT_MARKS = [
  'applyPending',
  'foldRevision',
  'decodeRevision',
  'evolveInPlace',
  'update',
  'submit',
  'planOps',
  'executeOp',
  'writeMeta',
  'publish',
  'putNodeStatus',
  'encodeNodeStatus',
  'outcome',
];

/** A worker's profile per agent and change: ms of that thread per (agent x change). */
export function profilePerAgentChange(s: ProfileSummary, agentChanges: number) {
  const per = (rec: Record<string, number>, limit: number) =>
    Object.fromEntries(
      Object.entries(rec)
        .slice(0, limit)
        .map(([k, v]) => [k, round(v / agentChanges, 3)]),
    );
  return {
    note:
      'worker thread 0 under the V8 sampling profiler (200 us) for extra changes not in the stats; ms of that thread ' +
      'per agent per change (its agents x the changes); inclusive = any frame of the group / function on the stack',
    agent_changes: agentChanges,
    busy_ms_per_agent_change: round(s.busyMs / agentChanges, 3),
    self_by_group: per(s.selfByGroup, 20),
    inclusive_by_group: per(s.inclusiveByGroup, 20),
    inclusive_by_function: per(s.marks, 20),
    /** Self time by source line (TypeScript, through the build's source maps), per agent per change. */
    hot_lines: per(s.hotLines, 20),
    top_self_functions_ms_total: s.topSelf,
  };
}

export interface Combination {
  agents: number;
  services: number;
  changes: number;
  fleet_start_ms_per_agent?: Summary;
  /**
   * CPU time per measured change (ms): this process (agents, relay, commits, all threads) and the
   * servers it uses. Unlike latency it does not grow while a thread waits for a core.
   */
  cpu_ms_per_change: Record<string, number>;
  main_thread_elu: number;
  worker_elu: number[];
  worker_heap_mb: number[];
  /** Each worker's heap before and after the full GC that followed the fleet's start (settleHeap). */
  worker_heap_settled_mb?: Array<{ before: number; after: number }>;
  /** The relay thread's and the main thread's, in the same pass. */
  relay_heap_settled_mb?: { before: number; after: number };
  main_heap_settled_mb?: { before: number; after: number };
  /** How long this process stayed busy after that GC (V8's background sweeping) before the warm-up began. */
  settle_quiet_wait_ms?: number;
  rss_mb: number;
  /** Garbage collection during the measured changes: the main thread and each worker thread. */
  gc: { main: Omit<GcStats, 'pauses'>; relay: Omit<GcStats, 'pauses'>; workers: Omit<GcStats, 'pauses'>[] };
  stats: ReturnType<typeof stageSummaries>;
  /** The warm-up changes right after the fleet (re)started, not in `stats`. */
  warmup?: ReturnType<typeof warmupSummary>;
  /** Large mesh only: the floor with as many stream readers as there are agents, right after. */
  floor?: FloorResult;
}
