import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  BpfMapBackend,
  cgroup2Mount,
  compile,
  destroyCgroupTree,
  loadAddon,
  ownCgroupDir,
  Reconciler,
  resolveAgentCgroup,
  teardownPinDir,
} from '@meshplane/dataplane';
import { applyChanges, type Change, emptyState, type MeshState } from '@meshplane/domain';
import { BENCH_PREFIX, type Cleanup, removePinRoot } from './cleanup';
import { sourceDir } from './procs';

/*
 * The bench's private piece of the machine, all named meshplane-bench-<pid>-<rand>:
 *
 *   <own cgroup>/meshplane-bench-…/          nothing attached here
 *       mesh/                                the "agent" cgroup: every program attached
 *           bench.client/                    the meshed client (a workload cgroup)
 *           bench.echo-meshed/               the meshed echo server (sockmap case)
 *       lb-only/                             connect4/sendmsg4/recvmsg4/getpeername4 only (no
 *                                            sockops/sk_msg): the socket LB without sockmap
 *       plain/                               no programs: direct client, plain server, HAProxy
 *   /sys/fs/bpf/meshplane-bench-…/<phase>/   one pin dir per phase (mesh, map-ops, sync-N)
 *
 * Programs are only ever attached to `mesh/`, a cgroup this run created below its own
 * (resolveAgentCgroup refuses the root and anything outside this process's subtree).
 */

export const NODE = 'bench-node';
export const NAMESPACE = 'bench';

export class BenchSpace {
  readonly tag = `${BENCH_PREFIX}-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  readonly mount: string;
  readonly root: string;
  readonly pinRoot = `/sys/fs/bpf/${this.tag}`;

  constructor(private readonly cleanup: Cleanup) {
    const mount = cgroup2Mount();
    if (!mount) throw new Error('no cgroup2 filesystem is mounted (see /proc/mounts)');
    this.mount = mount;
    this.root = path.join(ownCgroupDir(), this.tag);
    // Registered before anything exists: removal is a no-op for what was never created.
    cleanup.add(`remove cgroup tree ${this.root}`, () => destroyCgroupTree(this.root));
    cleanup.add(`remove pin root ${this.pinRoot}`, () => removePinRoot(this.pinRoot));
    // The BPF backend falls back to MESH_CGROUP when given no cgroup: a maps-only backend of
    // this bench must never attach to an agent's cgroup named in the environment.
    delete process.env.MESH_CGROUP;
    delete process.env.MESH_BPF_PIN_DIR;
  }

  /** A plain cgroup below the bench root (no programs). */
  cgroup(name: string): string {
    const dir = path.join(this.root, name);
    fs.mkdirSync(dir, { recursive: true });
    return resolveAgentCgroup(dir);
  }

  pinDir(phase: string): string {
    return path.join(this.pinRoot, phase);
  }

  /**
   * Loads bpf/mesh.bpf.o with its maps pinned in a fresh pin dir; with `cgroup`, attaches
   * every program there (sk_msg on the sockhash). Torn down by the cleanup unless the
   * caller tears it down first.
   */
  async backend(phase: string, cgroup?: string): Promise<BpfMapBackend> {
    const pinDir = this.pinDir(phase);
    fs.mkdirSync(this.pinRoot, { recursive: true });
    this.cleanup.add(`tear down ${pinDir}`, () => fs.existsSync(pinDir) && teardownPinDir(pinDir));
    const b = await BpfMapBackend.open({ node: NODE, pinDir, ...(cgroup ? { cgroup } : {}) });
    this.cleanup.add(`tear down backend ${pinDir}`, () => b.teardown());
    return b;
  }

  /**
   * A diagnostic attachment: a second instance of bpf/mesh.bpf.o on the SAME pinned maps
   * as `backend` (libbpf reuses pins by name), with only the socket-LB programs attached
   * to `cgroup` (no sockops, so no socket enters the sockhash and sk_msg never runs). The
   * links are pinned in the backend's links/ dir, so its teardown detaches them too.
   */
  attachLbOnly(backend: BpfMapBackend, cgroup: string): string[] {
    const programs = ['mesh_connect4', 'mesh_sendmsg4', 'mesh_recvmsg4', 'mesh_getpeer4'];
    const dir = resolveAgentCgroup(cgroup);
    const file = process.env.MESH_BPF_OBJECT ?? path.join(sourceDir(), '..', '..', 'bpf', 'mesh.bpf.o');
    const obj = new (loadAddon().BpfObject)(file, backend.pinDir);
    this.cleanup.add('close the lb-only object', () => obj.close());
    obj.load();
    for (const prog of programs) obj.attachCgroup(prog, dir, backend.linkPin(`lb-only-${prog}`));
    return programs;
  }
}

// ---------------------------------------------------------------- resources

type Port = { port: number; protocol: 'TCP' | 'UDP'; targetPort?: number };

export function service(name: string, vip: string, ports: Port[], selector: Record<string, string>): Change {
  return { op: 'put', kind: 'Service', namespace: NAMESPACE, name, spec: { vip, ports, selector } };
}

export function workload(
  name: string,
  address: string,
  node: string,
  labels: Record<string, string>,
): Change {
  return {
    op: 'put',
    kind: 'Workload',
    namespace: NAMESPACE,
    name,
    spec: { address, node, labels, identity: name.replace(/-\d+$/, '') },
  };
}

/** A Reconciler over `backend` and the state it applies, revision by revision. */
export class LocalAgent {
  state: MeshState = emptyState();
  readonly reconciler: Reconciler;

  constructor(readonly backend: BpfMapBackend) {
    this.reconciler = new Reconciler(backend, { node: NODE, cluster: 'bench' });
  }

  /** compile -> plan -> batched writes -> checkpoint; throws when the apply failed. */
  async apply(changes: Change[]): Promise<void> {
    this.state = applyChanges(this.state, changes, this.state.revision + 1);
    await this.reconciler.load();
    const desired = compile(this.state, NODE, {
      ids: await this.reconciler.allocator(),
      cgroupIdOf: this.backend.cgroupIdOf,
    });
    const outcome = await this.reconciler.apply(desired);
    if (!outcome.ok) throw new Error(`apply of revision ${this.state.revision} failed: ${outcome.error}`);
  }
}
