/** Garbage collection of the calling thread: its pauses (the `gc` performance entries), and a full GC on demand. */
import { constants, type PerformanceEntry, PerformanceObserver, performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';
import { nowMs } from '../lib';

export interface GcStats {
  count: number;
  totalMs: number;
  maxMs: number;
  /** Mark-sweep-compact (full) collections only. */
  majorCount: number;
  majorTotalMs: number;
  majorMaxMs: number;
  /** Pauses of at least PAUSE_MS: when (nowMs clock) and how long, to lay beside slow changes. */
  pauses: GcPause[];
}

export interface GcPause {
  at: number;
  ms: number;
  major: boolean;
}

const PAUSE_MS = 1;

const empty = (): GcStats => ({
  count: 0,
  totalMs: 0,
  maxMs: 0,
  majorCount: 0,
  majorTotalMs: 0,
  majorMaxMs: 0,
  pauses: [],
});

export class GcWatch {
  private acc = empty();
  private readonly obs: PerformanceObserver;
  // Both clocks are monotonic; entries carry performance.now() times, the benchmark uses nowMs().
  private readonly offset = nowMs() - performance.now();

  constructor() {
    this.obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) this.add(e);
    });
    this.obs.observe({ entryTypes: ['gc'] });
  }

  private add(e: PerformanceEntry): void {
    const a = this.acc;
    a.count++;
    a.totalMs += e.duration;
    a.maxMs = Math.max(a.maxMs, e.duration);
    const kind = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
    const major = kind === constants.NODE_PERFORMANCE_GC_MAJOR;
    if (e.duration >= PAUSE_MS) a.pauses.push({ at: e.startTime + this.offset, ms: e.duration, major });
    if (major) {
      a.majorCount++;
      a.majorTotalMs += e.duration;
      a.majorMaxMs = Math.max(a.majorMaxMs, e.duration);
    }
  }

  /** What was collected since the previous call; starts a new window. */
  take(): GcStats {
    const out = this.acc;
    this.acc = empty();
    const r = (x: number) => Math.round(x * 10) / 10;
    return {
      ...out,
      totalMs: r(out.totalMs),
      maxMs: r(out.maxMs),
      majorTotalMs: r(out.majorTotalMs),
      majorMaxMs: r(out.majorMaxMs),
    };
  }

  stop(): void {
    this.obs.disconnect();
  }
}

let gcFn: (() => void) | undefined;

/**
 * A full GC of the calling thread's heap; its used size before and after, MiB. An ordinary one, as
 * `gc()` under --expose-gc (set here, so a fresh context gets the function): not the inspector's
 * collectGarbage, which also lowers the heap's growth limit, so that the next full GC (30-40 ms
 * for a worker of 50 agents) lands among the measured changes.
 */
export function settleHeap(): { before: number; after: number } {
  if (!gcFn) {
    v8.setFlagsFromString('--expose-gc');
    gcFn = vm.runInNewContext('gc') as () => void;
  }
  const before = process.memoryUsage().heapUsed;
  gcFn();
  return { before: before / 2 ** 20, after: process.memoryUsage().heapUsed / 2 ** 20 };
}

/** A heap's size before and after settleHeap(), in whole MiB (for reports). */
export function roundedHeap(h: { before: number; after: number }): { before: number; after: number } {
  return { before: Math.round(h.before), after: Math.round(h.after) };
}
