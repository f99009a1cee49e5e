import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { destroyCgroupTree, ownCgroupDir, teardownPinDir } from '../../libs/dataplane/src/bpf';
import { kill9Child, spawnTracked, terminate, waitFor } from '../harness';

/*
 * Pieces of the full-stack data-plane suite: the agent as a real child process (the built
 * dist/ when it is current, else the sources through the swc runner, so a stale build never
 * tests old code), loopback TCP backends, and the sweep of what a killed earlier run left.
 */

export const ROOT = path.resolve(__dirname, '..', '..');
const DIST_MAIN = path.join(ROOT, 'dist', 'services', 'agent', 'src', 'main.js');
const SOURCE_DIRS = [
  'services/agent/src',
  'libs/dataplane/src',
  'libs/dataplane/src/bpf',
  'libs/messaging/src',
  'libs/domain/src',
];

function newestSourceMtime(): number {
  let newest = 0;
  for (const dir of SOURCE_DIRS)
    for (const f of fs.readdirSync(path.join(ROOT, dir)))
      if (f.endsWith('.ts') && !f.endsWith('.spec.ts'))
        newest = Math.max(newest, fs.statSync(path.join(ROOT, dir, f)).mtimeMs);
  return newest;
}

export function agentCommand(): { args: string[]; from: 'dist' | 'source' } {
  if (fs.existsSync(DIST_MAIN) && fs.statSync(DIST_MAIN).mtimeMs >= newestSourceMtime())
    return { args: [DIST_MAIN], from: 'dist' };
  return { args: [path.join(ROOT, 'test/relay/run-ts.cjs'), 'services/agent/src/main.ts'], from: 'source' };
}

export type LogLine = Record<string, unknown> & { msg?: string; level?: string };

/** A node agent child process; its JSON log lines are collected. */
export class AgentProcess {
  readonly logs: LogLine[] = [];
  stderr = '';
  readonly child: ChildProcess;
  readonly startedAt = Date.now();
  /** Exited AND its output read to the end ('close'): every log line it wrote is in `logs`. */
  closed = false;

  /**
   * `procCgroup`: a cgroup (of the test) the process joins before node starts, so that a sweep
   * after a killed test run (destroyCgroupTree) also ends an agent the run left behind. It must
   * be an ancestor of MESH_CGROUP (the agent only accepts a cgroup inside its own subtree) and
   * not MESH_CGROUP itself (the agent's own sockets stay out of its programs' reach).
   */
  constructor(env: Record<string, string>, procCgroup?: string) {
    // Only what the test says: no MESH_* of the environment running the tests leaks in.
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MESH_')));
    const [cmd, args] = procCgroup
      ? [
          '/bin/sh',
          ['-c', 'echo $$ > "$FULLSTACK_PROC_CGROUP/cgroup.procs" && exec "$@"', 'sh', process.execPath],
        ]
      : [process.execPath, []];
    this.child = spawnTracked(cmd as string, [...(args as string[]), ...agentCommand().args], {
      cwd: ROOT,
      env: { ...base, ...env, ...(procCgroup ? { FULLSTACK_PROC_CGROUP: procCgroup } : {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buf = '';
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          this.logs.push(JSON.parse(line));
        } catch {
          this.logs.push({ msg: line });
        }
      }
    });
    this.child.stderr!.setEncoding('utf8').on('data', (c: string) => {
      this.stderr += c;
    });
    this.child.once('close', () => {
      this.closed = true;
    });
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  find(pred: (l: LogLine) => boolean): LogLine | undefined {
    return this.logs.find(pred);
  }

  async waitForLog(pred: (l: LogLine) => boolean, what: string, timeoutMs = 20_000): Promise<LogLine> {
    return waitFor(
      () => {
        const hit = this.logs.find(pred);
        if (hit) return hit;
        if (this.closed)
          throw new Error(`agent exited (${this.child.exitCode ?? this.child.signalCode}): ${this.stderr}`);
        return undefined;
      },
      { timeoutMs, intervalMs: 25, what: `agent log: ${what}` },
    );
  }

  /** Waits for the process to exit on its own (teardown mode); returns its exit code. */
  async exited(timeoutMs = 20_000): Promise<number | null> {
    await waitFor(() => this.closed, { timeoutMs, what: 'agent to exit' });
    return this.child.exitCode;
  }

  kill9(): Promise<unknown> {
    return kill9Child(this.child);
  }

  stop(): Promise<unknown> {
    return terminate(this.child, { signal: 'SIGTERM', timeoutMs: 15_000 });
  }
}

/**
 * Starts an agent and waits for its first log line. dist/ is shared with whoever else builds
 * this checkout: a build running at this moment leaves modules half written for a few seconds
 * (tsc emits, then tsc-alias rewrites the imports), so a start that dies of MODULE_NOT_FOUND is
 * retried a few times instead of failing the suite for someone else's build.
 */
export async function launchAgent(
  env: Record<string, string>,
  procCgroup?: string,
  tries = 5,
): Promise<AgentProcess> {
  for (let i = 1; ; i++) {
    const a = new AgentProcess(env, procCgroup);
    try {
      await a.waitForLog(() => true, 'first log line', 15_000);
      return a;
    } catch (err) {
      if (i >= tries || !a.stderr.includes('MODULE_NOT_FOUND')) throw err;
      process.stderr.write(`[fullstack] agent start hit a concurrent build (MODULE_NOT_FOUND); retry ${i}\n`);
      await new Promise((r) => setTimeout(r, 2_000));
    }
  }
}

/** A TCP backend in the test process (outside the mesh cgroup): greets with its name, then closes. */
export async function tcpBackend(host: string, port: number, name: string): Promise<net.Server> {
  const srv = net.createServer((c) => {
    c.on('error', () => undefined);
    c.end(`${name}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen({ host, port, exclusive: true }, resolve);
  });
  return srv;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Pin dirs and cgroups `meshplane-test-<pid>-<hex8>` of test runs whose process is gone (killed
 * before their afterAll): the same names and rule as test/dataplane/mesh-env.ts, never a live run's.
 */
export async function sweepStale(): Promise<void> {
  const stale = (name: string) => {
    const m = /^meshplane-test-(\d+)-[0-9a-f]{8}$/.exec(name);
    return m !== null && !alive(Number(m[1]));
  };
  for (const name of fs.readdirSync('/sys/fs/bpf').filter(stale)) teardownPinDir(`/sys/fs/bpf/${name}`);
  const own = ownCgroupDir();
  for (const name of fs.readdirSync(own).filter(stale)) await destroyCgroupTree(path.join(own, name));
}
