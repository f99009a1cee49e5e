import { readFileSync } from 'node:fs';
import { type Summary, summarize } from './stats';

/** Monotonic milliseconds (fractional). */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = nowMs();
  const value = await fn();
  return { value, ms: nowMs() - t0 };
}

/** CPU counters: this process (user + system) and the whole machine (busy and total jiffies). */
export interface CpuSample {
  processMs: number;
  machineBusy: number;
  machineTotal: number;
}

/** Reads the counters; the machine's come from /proc/stat (zeros where it does not exist). */
export function cpuSample(): CpuSample {
  const u = process.cpuUsage();
  let machineBusy = 0;
  let machineTotal = 0;
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number) as number[];
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    machineTotal = f.slice(0, 8).reduce((a, b) => a + b, 0);
    machineBusy = machineTotal - (f[3] ?? 0) - (f[4] ?? 0);
  } catch {
    // not Linux: machine counters stay 0
  }
  return { processMs: (u.user + u.system) / 1000, machineBusy, machineTotal };
}

/**
 * CPU time the hypervisor gave to other guests while this machine wanted it (/proc/stat `steal`,
 * all vCPUs), ms so far; 0 where it cannot be read. Ticks of 10 ms: read it over stretches.
 */
export function stealMs(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    return Number(line.trim().split(/\s+/)[8] ?? 0) * 10;
  } catch {
    return 0;
  }
}

export interface CpuUse {
  /** CPU time this process spent, ms. */
  processMs: number;
  /** Share of all cores that were busy (0..1), every process on the machine included. */
  machineBusyFraction: number;
}

export function cpuSince(a: CpuSample, b: CpuSample = cpuSample()): CpuUse {
  const total = b.machineTotal - a.machineTotal;
  return {
    processMs: b.processMs - a.processMs,
    machineBusyFraction: total > 0 ? (b.machineBusy - a.machineBusy) / total : 0,
  };
}

export interface ThroughputResult {
  /** Operations that completed. */
  ops: number;
  /** From the start until the last writer finished its last operation. */
  elapsedMs: number;
  perSecond: number;
  latencyMs: Summary;
  /** Every operation's latency, in completion order. */
  latencies: number[];
  cpu: CpuUse;
}

/**
 * Runs `writers` concurrent loops calling `op(writer, i)` until `durationMs` has
 * passed (each loop finishes the operation it started), or until `maxOps` in all.
 * Throughput counts every completed operation over the real elapsed time.
 */
export async function runConcurrent(opts: {
  writers: number;
  durationMs: number;
  maxOps?: number;
  op: (writer: number, i: number) => Promise<void>;
}): Promise<ThroughputResult> {
  const latencies: number[] = [];
  const cpu0 = cpuSample();
  const start = nowMs();
  const deadline = start + opts.durationMs;
  const maxOps = opts.maxOps ?? Number.POSITIVE_INFINITY;
  let started = 0;
  const loop = async (w: number) => {
    for (let i = 0; nowMs() < deadline && started < maxOps; i++) {
      started++;
      const t0 = nowMs();
      await opts.op(w, i);
      latencies.push(nowMs() - t0);
    }
  };
  await Promise.all(Array.from({ length: opts.writers }, (_, w) => loop(w)));
  const elapsedMs = nowMs() - start;
  const cpu = cpuSince(cpu0);
  if (latencies.length === 0) throw new Error('runConcurrent: no operation completed');
  return {
    ops: latencies.length,
    elapsedMs,
    perSecond: (latencies.length * 1000) / elapsedMs,
    latencyMs: summarize(latencies),
    latencies,
    cpu,
  };
}

export interface ConcurrentCase {
  writers: number;
  op: (writer: number, i: number) => Promise<void>;
}

/**
 * Runs each case for `sliceMs`, in turn, `rounds` times, and adds up each
 * case's slices. Interleaving makes the comparison between cases robust to
 * load that comes and goes on the machine while the benchmark runs.
 */
export async function runInterleaved<K extends string>(
  rounds: number,
  sliceMs: number,
  cases: Record<K, ConcurrentCase>,
  /** Runs before each slice, with the name of the case about to run (reset state, checkpoint...). */
  between?: (name: K) => Promise<void>,
): Promise<Record<K, ThroughputResult>> {
  type Acc = { ops: number; elapsedMs: number; latencies: number[]; processMs: number; busyMs: number };
  const acc = {} as Record<K, Acc>;
  for (let r = 0; r < rounds; r++) {
    for (const [name, c] of Object.entries(cases) as [K, ConcurrentCase][]) {
      await between?.(name);
      const res = await runConcurrent({ writers: c.writers, durationMs: sliceMs, op: c.op });
      const a = acc[name] ?? { ops: 0, elapsedMs: 0, latencies: [], processMs: 0, busyMs: 0 };
      a.ops += res.ops;
      a.elapsedMs += res.elapsedMs;
      a.latencies.push(...res.latencies);
      a.processMs += res.cpu.processMs;
      a.busyMs += res.cpu.machineBusyFraction * res.elapsedMs;
      acc[name] = a;
    }
  }
  const out = {} as Record<K, ThroughputResult>;
  for (const [name, a] of Object.entries(acc) as [K, Acc][])
    out[name] = {
      ops: a.ops,
      elapsedMs: a.elapsedMs,
      perSecond: (a.ops * 1000) / a.elapsedMs,
      latencyMs: summarize(a.latencies),
      latencies: a.latencies,
      cpu: { processMs: a.processMs, machineBusyFraction: a.busyMs / a.elapsedMs },
    };
  return out;
}

export function formatMs(ms: number): string {
  if (ms < 1000) return `${ms.toFixed(0)} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** A line on stderr with the time since `t0`: progress, kept apart from the results table on stdout. */
export function progress(t0: number, msg: string): void {
  process.stderr.write(`[${((nowMs() - t0) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);
}

export interface QuietOptions {
  /** Length of each look, ms. */
  windowMs?: number;
  /** Quiet: this process used less than this share of one core over a window. */
  maxCoreShare?: number;
  /** Wait at least this long, however quiet the first windows look. */
  minMs?: number;
  /** Give up after this long (the result says it never got quiet). */
  maxMs?: number;
  /** This process's CPU ms so far (all threads); injected by tests. */
  cpuMs?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Waits until this process is (nearly) idle: after a full GC of a large heap, V8 sweeps and
 * unmaps on its background threads for seconds, and work measured meanwhile waits for a core.
 * Returns how long it waited and whether it got quiet.
 */
export async function untilQuiet(opts: QuietOptions = {}): Promise<{ waitedMs: number; quiet: boolean }> {
  const windowMs = opts.windowMs ?? 250;
  const limit = (opts.maxCoreShare ?? 0.05) * windowMs;
  const maxMs = opts.maxMs ?? 15_000;
  const cpuMs =
    opts.cpuMs ??
    (() => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    });
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let waitedMs = 0;
  while (waitedMs < maxMs) {
    const before = cpuMs();
    await sleep(windowMs);
    waitedMs += windowMs;
    if (cpuMs() - before < limit && waitedMs >= (opts.minMs ?? 0)) return { waitedMs, quiet: true };
  }
  return { waitedMs, quiet: false };
}
