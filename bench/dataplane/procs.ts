import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { movePid } from '@meshplane/dataplane';
import { BENCH_PREFIX, type Cleanup } from './cleanup';

/*
 * The bench's child processes: the C programs of bench/dataplane (compiled here with cc,
 * into a temporary directory removed at the end) and the line protocol they speak.
 */

/** bench/dataplane in the repository (this file runs from dist/bench/dataplane). */
export function sourceDir(): string {
  for (const dir of [path.resolve(__dirname, '..', '..', '..', 'bench', 'dataplane'), __dirname]) {
    if (fs.existsSync(path.join(dir, 'rr.c'))) return dir;
  }
  throw new Error(`bench/dataplane/rr.c not found from ${__dirname}`);
}

export interface NativeTools {
  rr: string;
  mapFloor: string;
  cc: string;
}

/** Compiles rr.c and map-floor.c (-O2, linked to libbpf) into a fresh temporary directory. */
export function buildNative(cleanup: Cleanup): NativeTools {
  const src = sourceDir();
  const out = fs.mkdtempSync(path.join(os.tmpdir(), `${BENCH_PREFIX}-${process.pid}-build-`));
  cleanup.add(`remove ${out}`, () => fs.rmSync(out, { recursive: true, force: true }));
  const cc = process.env.CC ?? 'cc';
  const build = (args: string[]) =>
    execFileSync(cc, ['-O2', '-Wall', '-Wextra', ...args], { stdio: 'pipe', timeout: 120_000 });
  const rr = path.join(out, 'rr');
  const mapFloor = path.join(out, 'map-floor');
  build(['-o', rr, path.join(src, 'rr.c')]);
  build(['-o', mapFloor, path.join(src, 'map-floor.c'), '-lbpf']);
  const version = execFileSync(cc, ['--version'], { encoding: 'utf8' }).split('\n')[0]!;
  return { rr, mapFloor, cc: version };
}

/** A child that answers commands on stdin with lines on stdout. */
export class LineProc {
  readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: string[] = [];
  private waiter: (() => void) | undefined;
  private exited: string | undefined;

  constructor(
    readonly name: string,
    file: string,
    args: string[],
    cleanup: Cleanup,
  ) {
    this.child = spawn(file, args, { stdio: 'pipe' });
    const pid = this.child.pid;
    cleanup.add(`kill ${name} (${pid})`, () => this.kill());
    readline.createInterface({ input: this.child.stdout }).on('line', (l) => {
      this.lines.push(l);
      this.waiter?.();
    });
    this.child.stderr.on('data', (d) => process.stderr.write(`[${name}] ${d}`));
    this.child.on('error', (err) => {
      this.exited = err.message;
      this.waiter?.();
    });
    this.child.on('exit', (code, sig) => {
      this.exited = `exited with ${sig ?? code}`;
      this.waiter?.();
    });
  }

  get pid(): number {
    const pid = this.child.pid;
    if (pid === undefined) throw new Error(`${this.name} did not start: ${this.exited ?? 'no pid'}`);
    return pid;
  }

  send(line: string): void {
    this.child.stdin.write(`${line}\n`);
  }

  /** The next line of output (lines are queued, none is lost). */
  async line(timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const l = this.lines.shift();
      if (l !== undefined) return l;
      if (this.exited) throw new Error(`${this.name} ${this.exited}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name}: no answer within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = undefined;
    }
  }

  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null || this.child.pid === undefined)
      return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGKILL');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 2_000))]);
  }
}

/** The cgroup v2 path (relative to the mount) a process is in, from /proc/<pid>/cgroup. */
export function cgroupOf(pid: number): string {
  const line = fs
    .readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('0::'));
  return line ? line.slice(3) : '';
}

/**
 * Starts `rr server|client` and puts it in `cgroupDir` BEFORE its first socket call (it
 * idles after printing "ready"); checks that /proc/<pid>/cgroup says so.
 */
export async function startRr(
  tools: NativeTools,
  mode: 'server' | 'client',
  name: string,
  cgroupDir: string,
  cgroupMount: string,
  cleanup: Cleanup,
): Promise<LineProc> {
  const p = new LineProc(name, tools.rr, [mode], cleanup);
  const ready = await p.line(10_000);
  if (ready !== 'ready') throw new Error(`${name}: expected "ready", got ${ready}`);
  movePid(cgroupDir, p.pid);
  const want = `/${path.relative(cgroupMount, cgroupDir)}`;
  const got = cgroupOf(p.pid);
  if (got !== want) throw new Error(`${name} (${p.pid}) is in cgroup ${got}, expected ${want}`);
  return p;
}

/** An echo server: `listen HOST` -> its port; `stats` -> connections accepted so far. */
export class RrServer {
  private constructor(
    readonly proc: LineProc,
    readonly host: string,
    readonly port: number,
  ) {}

  static async start(proc: LineProc, host: string): Promise<RrServer> {
    proc.send(`listen ${host}`);
    const l = await proc.line(10_000);
    const m = /^port (\d+)$/.exec(l);
    if (!m) throw new Error(`${proc.name}: listen ${host} failed: ${l}`);
    return new RrServer(proc, host, Number(m[1]));
  }

  /** Waits until no connection arrived for `quietMs` (connections a proxy opens asynchronously). */
  async settle(quietMs = 200): Promise<number> {
    let prev = await this.accepts();
    for (;;) {
      await new Promise((r) => setTimeout(r, quietMs));
      const now = await this.accepts();
      if (now === prev) return now;
      prev = now;
    }
  }

  async accepts(): Promise<number> {
    this.proc.send('stats');
    const l = await this.proc.line(10_000);
    const m = /^accepts (\d+)$/.exec(l);
    if (!m) throw new Error(`${this.proc.name}: unexpected stats reply ${l}`);
    return Number(m[1]);
  }
}

export interface RrResult {
  mode: 'new' | 'reused';
  /** getpeername() on the client socket (the VIP when getpeername4 translated it). */
  peer: string;
  local: string;
  /** tcp_info of the (last) client socket: bytes that went through TCP. */
  bytes_acked: number;
  bytes_received: number;
  samples_ns: number[];
}

/** Runs one slice on a client: N timed request/responses after WARMUP untimed ones. */
export async function rrSlice(
  client: LineProc,
  target: { host: string; port: number },
  mode: 'new' | 'reused',
  n: number,
  warmup: number,
  size: number,
): Promise<RrResult> {
  client.send(`rr ${target.host} ${target.port} ${mode} ${n} ${warmup} ${size}`);
  const l = await client.line(60_000);
  const r = JSON.parse(l) as RrResult & { ok: boolean; error?: string };
  if (!r.ok) throw new Error(`${client.name} -> ${target.host}:${target.port} (${mode}): ${r.error}`);
  return r;
}
