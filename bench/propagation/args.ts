/** The propagation benchmark's options (`--name=value`), target and fixed settings. */
import { DEFAULT_STATUS_INTERVAL_MS } from '../../services/agent/src/status';
import type { Target } from '../lib';

export const DEFAULTS = {
  /** Mesh sizes (Services; each has 3 Workloads). */
  small: 1000,
  large: 10_000,
  /** Largest fleet; the steps are 1, 10 and this. */
  maxAgents: 100,
  /** Node names the workloads are spread over (the fleet's nodes are node-0 .. node-<N-1>). */
  nodes: 100,
  /** Sequential single-resource changes per (agents, size) combination... */
  changes: 100,
  /**
   * ...and for the headline combination (most agents, large mesh), and floor samples. The p99 of
   * 200 samples lies between the second- and third-worst: a stray stall or two moved the ratio
   * by 1 or more between runs (2.3 to 4.4 over ten runs). Of 500 it lies between the fifth- and
   * sixth-worst.
   */
  headlineChanges: 500,
  /**
   * Changes committed after each fleet (re)start and before the measured ones, reported apart
   * (`warmup` of each combination): the agents' first changes pay for the start-up's garbage and
   * code not yet optimized, which bootstrap_10k_ms and fleet_start_ms_per_agent measure instead.
   * The settle GC deoptimizes most of the hot code ("weak objects"), and V8 re-optimizes it on its
   * background threads while the next changes run: with 100 agents those threads ran ~11 ms per
   * change over the first 20 changes after the settle, ~4 over the next 20, and ~1 (steady) from
   * about the 50th on (schedstat of the bench's threads). With 20 the first measured changes
   * waited for them: the first 30 averaged 20-26 ms against 18 for the rest of the run.
   */
  warmupChanges: 60,
  /**
   * A full GC in each worker after a fleet (re)start, before the warm-up. The simulation gives 50
   * agents one heap with a high limit, so the garbage of 50 bootstraps sits in old space (0.5 to
   * 1.3 GB per worker, measured), and a scavenge's pause grows with the whole heap (~2.5 ms per GB here, and
   * ~2.5 ms per MB that survives): a cost a real agent, with 1/50 of that heap, does not pay.
   * Reported as `worker_heap_settled_mb`. The relay thread and the main thread are collected in
   * the same pass (`relay_heap_settled_mb`, `main_heap_settled_mb`).
   */
  settleHeap: true,
  /** Pause between one change being applied everywhere and the next commit. */
  gapMs: 20,
  /** Worker threads hosting the agents (round-robin). */
  workers: 2,
  /** Old-generation heap limit of each worker, MiB (a limit, not a reservation). */
  workerHeapMb: 8192,
  /** Services per seeding change set (with their workloads). */
  seedChunk: 250,
  heartbeatMs: 5000,
  /** The agents' MESH_STATUS_INTERVAL_MS (their default; 0 = a write after every apply, for A/B). */
  statusIntervalMs: DEFAULT_STATUS_INTERVAL_MS,
  /** Extra changes with worker 0 under the CPU profiler, after the headline measurement (0: none). */
  profileChanges: 30,
  /** Bootstrap measurements (one agent, empty maps, to head) at each size. */
  bootstrap: true,
  /** The tracing-overhead run (issue 6) after the main measurement. */
  tracing: true,
  seed: 20_251_125,
};
export type Args = typeof DEFAULTS;

export const TARGETS: Record<string, Target> = {
  p99_ratio: { op: '<=', threshold: 2 },
  /** Issue 6; only when the tracing run ran (`--tracing`). */
  tracing_overhead_ratio: { op: '<=', threshold: 1.1 },
};

/** The targets whose metric this run measured. */
export function targetsOf(metrics: Record<string, number>): Record<string, Target> {
  return Object.fromEntries(Object.entries(TARGETS).filter(([name]) => metrics[name] !== undefined));
}

export const NATS_URL = process.env.NATS_URL || 'nats://127.0.0.1:4222';
export const ACTOR = 'bench-propagation';
export const REASON = 'bench: canary weight';
