import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Target {
  /** The metric meets its target when `value op threshold`. */
  op: '>=' | '<=';
  threshold: number;
}

export interface TargetResult extends Target {
  value: number;
  pass: boolean;
}

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  platform: string;
  nodeVersion: string;
  pgServerVersion: string;
  /** 1, 5 and 15 minute load averages when the run started: other work on the machine skews results. */
  loadAverageAtStart: number[];
  /**
   * CPU 0's caches, e.g. `L1d 32K, L1i 64K, L2 512K, L3 8192K/2` (/2: shared by two CPUs). Two
   * hosts that both said "AMD EPYC" x2 ran the propagation benchmark's agents at 0.2 and 0.3 ms
   * each: its agents share threads and run from cold caches, so the caches are part of the machine.
   */
  caches: string;
}

export interface CacheLevel {
  level: string;
  type: string;
  size: string;
  /** CPUs sharing it, as sysfs lists them (`0-1`, `0,2`). */
  sharedCpus: string;
}

/** `L1d 32K, L1i 64K, L2 512K, L3 8192K/2` from sysfs's cache entries; 'unknown' without any. */
export function describeCaches(levels: readonly CacheLevel[]): string {
  const count = (list: string) =>
    list.split(',').reduce((n, part) => {
      const [a, b] = part.split('-').map(Number);
      return n + (b === undefined ? 1 : b - a! + 1);
    }, 0);
  const names = levels.map((c) => {
    const kind = c.type === 'Data' ? 'd' : c.type === 'Instruction' ? 'i' : '';
    const shared = count(c.sharedCpus);
    return `L${c.level}${kind} ${c.size}${shared > 1 ? `/${shared}` : ''}`;
  });
  return names.length > 0 ? names.join(', ') : 'unknown';
}

function readCaches(dir = '/sys/devices/system/cpu/cpu0/cache'): string {
  try {
    const read = (entry: string, file: string) => readFileSync(path.join(dir, entry, file), 'utf8').trim();
    const levels = readdirSync(dir)
      .filter((e) => /^index\d+$/.test(e))
      .sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)))
      .map((e) => ({
        level: read(e, 'level'),
        type: read(e, 'type'),
        size: read(e, 'size'),
        sharedCpus: read(e, 'shared_cpu_list'),
      }));
    return describeCaches(levels);
  } catch {
    return 'unknown';
  }
}

export interface BenchReport {
  benchmark: string;
  /** Flat metric name -> value; each becomes a top-level key of the JSON file. */
  metrics: Record<string, number>;
  targets?: Record<string, Target>;
  /** Workload parameters (sizes, concurrency, seeds) that produced the numbers. */
  params?: Record<string, unknown>;
  /** Anything else worth keeping: phase timings, diagnostics, how data was built. */
  details?: Record<string, unknown>;
  machine: MachineInfo;
  startedAt: Date;
  durationMs: number;
}

export function machineInfo(pgServerVersion: string): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    nodeVersion: process.version,
    pgServerVersion,
    loadAverageAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
    caches: readCaches(),
  };
}

export function meetsTarget(value: number, t: Target): boolean {
  if (!Number.isFinite(value)) return false;
  return t.op === '>=' ? value >= t.threshold : value <= t.threshold;
}

export function evaluateTargets(
  metrics: Record<string, number>,
  targets: Record<string, Target> = {},
): Record<string, TargetResult> {
  const out: Record<string, TargetResult> = {};
  for (const [name, t] of Object.entries(targets)) {
    const value = metrics[name];
    if (value === undefined) throw new Error(`target for unknown metric ${name}`);
    out[name] = { ...t, value, pass: meetsTarget(value, t) };
  }
  return out;
}

/** `<repo>/bench/results`, or BENCH_RESULTS_DIR. Compiled code lives in `<repo>/dist/bench/lib`. */
export function resultsDir(): string {
  return process.env.BENCH_RESULTS_DIR || path.resolve(__dirname, '..', '..', '..', 'bench', 'results');
}

/** The JSON document: identity, metrics as top-level keys, targets, then context. */
export function toDocument(r: BenchReport): Record<string, unknown> {
  const targets = evaluateTargets(r.metrics, r.targets);
  return {
    benchmark: r.benchmark,
    date: r.startedAt.toISOString(),
    duration_s: Math.round(r.durationMs / 100) / 10,
    ...r.metrics,
    targets,
    pass: Object.values(targets).every((t) => t.pass),
    machine: r.machine,
    params: r.params ?? {},
    details: r.details ?? {},
  };
}

/** Writes `<dir>/<name>.json` atomically (pretty JSON) and returns its path. */
export function writeResults(r: BenchReport, dir = resultsDir()): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${r.benchmark}.json`);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(toDocument(r), null, 2)}\n`);
  renameSync(tmp, file);
  return file;
}

function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const abs = Math.abs(x);
  if (abs >= 1000) return Math.round(x).toLocaleString('en-US');
  if (abs >= 10) return x.toFixed(1);
  return x.toFixed(3);
}

/** A plain-text table: every metric, and for those with a target the target and PASS/MISS. */
export function formatTable(metrics: Record<string, number>, targets: Record<string, Target> = {}): string {
  const results = evaluateTargets(metrics, targets);
  const rows = Object.entries(metrics).map(([name, value]) => {
    const t = results[name];
    return [name, fmt(value), t ? `${t.op} ${t.threshold}` : '', t ? (t.pass ? 'PASS' : 'MISS') : ''];
  });
  const header = ['metric', 'value', 'target', ''];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 1 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export function printMachine(m: MachineInfo): string {
  return (
    `${m.cpuModel} x${m.cores} (${m.caches}), ${m.memoryGiB} GiB, node ${m.nodeVersion}, PostgreSQL ${m.pgServerVersion}, ` +
    `load ${m.loadAverageAtStart.join(' ')}`
  );
}
