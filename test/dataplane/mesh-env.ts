import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { applyChanges, type Change, emptyState, type MeshState } from '@meshplane/domain';
import {
  BpfMapBackend,
  bpfAvailable,
  destroyCgroupTree,
  movePid,
  ownCgroupDir,
  teardownPinDir,
} from '../../libs/dataplane/src/bpf';
import { compile } from '../../libs/dataplane/src/compile';
import { type ApplyOutcome, Reconciler } from '../../libs/dataplane/src/reconciler';

/*
 * One private data plane per test file: a cgroup below this process's own cgroup and a
 * pin dir, both named meshplane-test-<pid>-<rand>, with every program attached to that
 * cgroup only. cleanup() kills the workload processes, detaches and unpins everything
 * and removes the cgroups, and is safe to call after a failed setup.
 */

const availability = bpfAvailable();

/**
 * `describe` when BPF works here. Otherwise: with CI=true a suite that FAILS naming the
 * reason (CI must never go green without the real data plane), else a skip that says why.
 */
export function describeBpf(name: string, fn: () => void): void {
  if (availability === true) {
    describe(name, fn);
  } else if (process.env.CI === 'true') {
    describe(name, () => {
      it('has a usable BPF data plane (CI=true)', () => {
        throw new Error(`BPF is unavailable with CI=true: ${availability}`);
      });
    });
  } else {
    process.stderr.write(`[dataplane] skipping "${name}": ${availability}\n`);
    describe.skip(`${name} [skipped: ${availability}]`, fn);
  }
}

export const NODE = 'node-a';

export interface ClientReply {
  id: number;
  ok?: boolean;
  error?: string;
  [k: string]: unknown;
}

/** A workload process (fixtures/mesh-client.js) running inside a workload cgroup. */
export class MeshClient {
  private seq = 0;
  private readonly pending = new Map<number, (r: ClientReply) => void>();

  constructor(readonly child: ChildProcessWithoutNullStreams) {
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const msg = JSON.parse(line) as ClientReply;
      this.pending.get(msg.id)?.(msg);
      this.pending.delete(msg.id);
    });
  }

  run<T = ClientReply>(
    op: string,
    args: Record<string, unknown> = {},
    timeoutMs = 60_000,
  ): Promise<T & ClientReply> {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`client ${op} timed out`)), timeoutMs);
      this.pending.set(id, (r) => {
        clearTimeout(t);
        resolve(r as T & ClientReply);
      });
      this.child.stdin.write(`${JSON.stringify({ id, op, ...args })}\n`);
    });
  }
}

export interface Counts {
  byName: Record<string, number>;
  errors: Record<string, number>;
  peers?: Record<string, number>;
  from?: Record<string, number>;
  peer?: string;
}

export class MeshTestEnv {
  readonly tag = `meshplane-test-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  readonly cgroup = path.join(ownCgroupDir(), this.tag);
  readonly pinDir = `/sys/fs/bpf/${this.tag}`;
  backend: BpfMapBackend | undefined;
  reconciler: Reconciler | undefined;
  state: MeshState = emptyState();
  private revision = 0;
  private readonly children: ChildProcessWithoutNullStreams[] = [];
  private readonly closers: Array<() => Promise<void>> = [];

  async open(): Promise<BpfMapBackend> {
    if (!this.backend) await sweepStale();
    this.backend = await BpfMapBackend.open({ node: NODE, pinDir: this.pinDir, cgroup: this.cgroup });
    this.reconciler = new Reconciler(this.backend, { node: NODE, cluster: 'test' });
    await this.reconciler.load();
    return this.backend;
  }

  /** Appends a revision to the local state and writes it to the maps (compile -> plan -> batches). */
  async apply(changes: Change[]): Promise<ApplyOutcome> {
    this.state = applyChanges(this.state, changes, ++this.revision);
    const rec = this.reconciler!;
    const desired = compile(this.state, NODE, {
      ids: await rec.allocator(),
      cgroupIdOf: this.backend!.cgroupIdOf,
    });
    const outcome = await rec.apply(desired);
    if (!outcome.ok) throw new Error(`apply of revision ${this.revision} failed: ${outcome.error}`);
    return outcome;
  }

  /** Starts a workload process in cgroup `<namespace>.<name>` (created here); it idles until told. */
  async spawnWorkload(name: string, namespace = 'default'): Promise<MeshClient> {
    const dir = this.backend!.workloadCgroup(namespace, name);
    const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'mesh-client.js')], {
      stdio: 'pipe',
    });
    this.children.push(child);
    child.stderr.on('data', (d) => process.stderr.write(`[${name}] ${d}`));
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`${name} exited with ${code} before it was ready`)));
      child.stdout.once('data', () => resolve());
    });
    // Before its first socket call: the programs judge a caller by its cgroup at call time.
    movePid(dir, child.pid!);
    return new MeshClient(child);
  }

  /** A TCP backend in THIS process (outside the mesh cgroup): greets with its name, then closes. */
  async tcpBackend(host: string, port: number, name: string): Promise<number> {
    const srv = net.createServer((c) => {
      c.on('error', () => undefined);
      c.end(`${name}\n`);
    });
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen({ host, port, exclusive: true }, resolve);
    });
    this.closers.push(() => new Promise((r) => srv.close(() => r())));
    return (srv.address() as net.AddressInfo).port;
  }

  /** A UDP backend that answers every datagram with its name. */
  async udpBackend(host: string, port: number, name: string): Promise<number> {
    const s = dgram.createSocket('udp4');
    s.on('message', (_msg, rinfo) => s.send(name, rinfo.port, rinfo.address));
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(port, host, resolve);
    });
    this.closers.push(() => new Promise((r) => s.close(() => r())));
    return s.address().port;
  }

  async cleanup(): Promise<void> {
    const errors: unknown[] = [];
    const attempt = async (f: () => unknown) => {
      try {
        await f();
      } catch (err) {
        errors.push(err);
      }
    };
    this.reconciler?.stop();
    for (const c of this.children) await attempt(() => c.exitCode === null && c.kill('SIGKILL'));
    for (const close of this.closers) await attempt(close);
    if (this.backend) await attempt(() => this.backend!.teardown());
    else if (fs.existsSync(this.pinDir)) await attempt(() => teardownPinDir(this.pinDir));
    await attempt(() => destroyCgroupTree(this.cgroup));
    if (errors.length) throw errors[0];
  }
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
 * Removes pin dirs and cgroups of test runs whose process is gone (a run killed before
 * its afterAll). Only names this file creates, only for dead pids: never a live run's.
 */
async function sweepStale(): Promise<void> {
  const stale = (name: string) => {
    const m = /^meshplane-test-(\d+)-[0-9a-f]{8}$/.exec(name);
    return m !== null && !alive(Number(m[1]));
  };
  for (const name of fs.readdirSync('/sys/fs/bpf').filter(stale)) teardownPinDir(`/sys/fs/bpf/${name}`);
  const own = ownCgroupDir();
  for (const name of fs.readdirSync(own).filter(stale)) await destroyCgroupTree(path.join(own, name));
}

/** Share of `name` in a tally, in percent. */
export function percent(counts: Record<string, number>, name: string): number {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  return total ? (100 * (counts[name] ?? 0)) / total : 0;
}
