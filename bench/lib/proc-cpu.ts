/**
 * CPU time actually used, per process, over a stretch of a benchmark (Linux /proc): latency on
 * a shared machine mixes in waiting for a core, CPU time does not. The bench's own process is
 * read with process.cpuUsage() (every thread); the servers it talks to by name from /proc.
 */
import fs from 'node:fs';

/** /proc/<pid>/stat counts in USER_HZ, which is 100 on every Linux the kernel ABI allows. */
const TICK_MS = 10;

/** Pids whose command name is `comm` (e.g. nats-server, postgres). */
export function pidsNamed(comm: string): number[] {
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (fs.readFileSync(`/proc/${e}/comm`, 'utf8').trim() === comm) out.push(Number(e));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** User + system CPU ms of `pid` so far, or undefined once it is gone. */
function cpuMsOf(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces), from field 3 on: utime is 14, stime 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * TICK_MS;
  } catch {
    return undefined;
  }
}

export interface ProcessCpuSample {
  self: NodeJS.CpuUsage;
  servers: Map<string, Map<number, number>>;
}

/** Servers whose CPU is worth reading beside the bench's own. */
export const SERVER_COMMANDS = ['nats-server', 'postgres'] as const;

/** The pids of `commands` now, for samples that must not scan /proc each time (processes that start later are missed). */
export function processPids(commands: readonly string[] = SERVER_COMMANDS): Map<string, number[]> {
  return new Map(commands.map((c) => [c, pidsNamed(c)]));
}

/** `pids`: read these (processPids) instead of scanning /proc for each command. */
export function sampleProcessCpu(
  commands: readonly string[] = SERVER_COMMANDS,
  pids?: ReadonlyMap<string, readonly number[]>,
): ProcessCpuSample {
  const servers = new Map<string, Map<number, number>>();
  for (const c of pids ? [...pids.keys()] : commands) {
    const per = new Map<number, number>();
    for (const pid of pids?.get(c) ?? pidsNamed(c)) {
      const ms = cpuMsOf(pid);
      if (ms !== undefined) per.set(pid, ms);
    }
    servers.set(c, per);
  }
  return { self: process.cpuUsage(), servers };
}

/** CPU ms used since `before`: this process (all its threads) and each server (its processes summed). */
export function processCpuSince(
  before: ProcessCpuSample,
  pids?: ReadonlyMap<string, readonly number[]>,
): Record<string, number> {
  const now = sampleProcessCpu([...before.servers.keys()], pids);
  const self = process.cpuUsage(before.self);
  const out: Record<string, number> = { bench_process: (self.user + self.system) / 1000 };
  for (const [c, per] of now.servers) {
    let ms = 0;
    // Processes present at both ends (postgres backends come and go; a new one's CPU counts from 0).
    for (const [pid, t] of per) ms += t - (before.servers.get(c)?.get(pid) ?? 0);
    out[c] = ms;
  }
  return out;
}

/** A thread's time on a CPU and its time runnable but waiting for one, ms (schedstat's first two fields). */
export interface ThreadSched {
  runMs: number;
  waitMs: number;
}

export function parseSchedstat(text: string): ThreadSched | undefined {
  const [run, wait] = text.trim().split(/\s+/).map(Number);
  if (!Number.isFinite(run) || !Number.isFinite(wait)) return undefined;
  return { runMs: run! / 1e6, waitMs: wait! / 1e6 };
}

/**
 * A reader of the calling thread's schedstat (Linux with schedstats; it returns undefined
 * elsewhere). What separates a slow stretch that worked from one that waited for a core: on 2
 * cores the agents' threads share them with the relay, NATS, Postgres and V8's GC helpers.
 * The file is opened once, by the thread that will read it (/proc/thread-self names the opener),
 * and each call is one pread: readFileSync's open, stat, reads and close cost ~140 µs on this VM,
 * inside the span being measured.
 */
export function threadSchedReader(): () => ThreadSched | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync('/proc/thread-self/schedstat', 'r');
  } catch {
    return () => undefined;
  }
  const buf = Buffer.alloc(128);
  return () => {
    try {
      const n = fs.readSync(fd!, buf, 0, buf.length, 0);
      return parseSchedstat(buf.toString('latin1', 0, n));
    } catch {
      return undefined;
    }
  };
}
