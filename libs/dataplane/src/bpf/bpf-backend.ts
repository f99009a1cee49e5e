import fs from 'node:fs';
import path from 'node:path';
import {
  decodeMeta,
  ERRNO,
  type ErrnoName,
  encodeMeta,
  type MapBackend,
  type MapEntry,
  MapError,
  META_KEY,
  type Meta,
} from '../backend';
import type { CgroupIdOf } from '../compile';
import { MAPS, type MapName, STRUCTS } from '../layout';
import { bpffsMounts, cgroupId, ensureWorkloadCgroup, resolveAgentCgroup, workloadCgroupId } from './cgroup';
import {
  BPF_ANY,
  isNativeError,
  loadAddon,
  type NativeAddon,
  type NativeBpfObject,
  type NativeMapInfo,
  objectPath,
} from './native';
import { BatchBuffers } from './pack';

/*
 * The real data plane's MapBackend: maps pinned under a per-node pin directory, the
 * programs of bpf/mesh.bpf.o attached to the agent's cgroup through PINNED links. So
 * the attachments and the maps outlive the agent process (kill -9 keeps traffic
 * flowing); a restarted agent opens the same object with the same pin root, libbpf
 * reuses the pinned maps, and the pinned links are adopted by swapping their program
 * (BPF_LINK_UPDATE) instead of being detached and re-attached.
 */

/** Cgroup programs: name in mesh.bpf.c -> link pin name. */
export const CGROUP_PROGRAMS = {
  mesh_connect4: 'connect4',
  mesh_sendmsg4: 'sendmsg4',
  mesh_recvmsg4: 'recvmsg4',
  mesh_getpeer4: 'getpeername4',
  mesh_sockops: 'sockops',
} as const;
const SK_MSG_PROGRAM = 'mesh_sk_msg';
const SOCKHASH = 'mesh_socks';

export interface BpfMapBackendOptions {
  /** Node name: the last component of the default pin dir. */
  node: string;
  /** Default MESH_BPF_PIN_DIR, else /sys/fs/bpf/meshplane/<node>. */
  pinDir?: string;
  /** cgroup v2 directory the programs attach to; default MESH_CGROUP. Without one, maps only. */
  cgroup?: string;
  /** Default bpf/mesh.bpf.o of this repository (MESH_BPF_OBJECT). */
  object?: string;
}

export type AttachResult = 'attached' | 'adopted';

export function defaultPinDir(node: string): string {
  return process.env.MESH_BPF_PIN_DIR ?? `/sys/fs/bpf/meshplane/${node}`;
}

/** A pin dir must be a subdirectory of a bpffs mount: teardown removes it. */
function checkPinDir(dir: string): string {
  const abs = path.resolve(dir);
  const mount = bpffsMounts().find((m) => abs.startsWith(`${m}/`));
  if (!mount)
    throw new Error(`${abs} is not below a bpffs mount (${bpffsMounts().join(', ') || 'none mounted'})`);
  return abs;
}

export class BpfMapBackend implements MapBackend {
  readonly kind = 'bpf';
  private readonly fds = new Map<MapName, NativeMapInfo>();
  private readonly buffers = new Map<MapName, BatchBuffers>();
  private closed = false;
  /** What open() did with each program: attached fresh or adopted a pinned link. */
  readonly attachments: Record<string, AttachResult> = {};

  private constructor(
    private readonly addon: NativeAddon,
    private obj: NativeBpfObject | undefined,
    readonly pinDir: string,
    readonly cgroup: string | undefined,
  ) {}

  /**
   * Loads the object with maps pinned in (or reused from) the pin dir and, when a cgroup
   * is given, attaches every program to it, adopting links an earlier agent pinned.
   */
  static async open(opts: BpfMapBackendOptions): Promise<BpfMapBackend> {
    const addon = loadAddon();
    const pinDir = checkPinDir(opts.pinDir ?? defaultPinDir(opts.node));
    const cgroupDir = opts.cgroup ?? process.env.MESH_CGROUP;
    const cgroup = cgroupDir ? resolveAgentCgroup(cgroupDir) : undefined;
    fs.mkdirSync(path.join(pinDir, 'links'), { recursive: true });
    const obj = new addon.BpfObject(opts.object ?? objectPath(), pinDir);
    const backend = new BpfMapBackend(addon, obj, pinDir, cgroup);
    try {
      obj.load();
      for (const name of Object.keys(MAPS) as MapName[]) backend.openMap(name);
      if (cgroup) backend.attach(cgroup);
    } catch (err) {
      await backend.close();
      throw err;
    }
    return backend;
  }

  /** Opens maps an agent pinned earlier, without loading or attaching anything (tools, bench). */
  static async openPinned(pinDir: string): Promise<BpfMapBackend> {
    const backend = new BpfMapBackend(loadAddon(), undefined, checkPinDir(pinDir), undefined);
    try {
      for (const name of Object.keys(MAPS) as MapName[]) backend.openMap(name);
    } catch (err) {
      await backend.close();
      throw err;
    }
    return backend;
  }

  private openMap(name: MapName): void {
    const info = this.addon.openPinned(path.join(this.pinDir, name));
    const def = MAPS[name];
    const keySize = STRUCTS[def.key].size;
    if (info.keySize !== keySize || (def.value && info.valueSize !== STRUCTS[def.value].size)) {
      this.addon.closeFd(info.fd);
      throw new Error(
        `${name} in ${this.pinDir}: key/value ${info.keySize}/${info.valueSize} bytes, this build expects ` +
          `${keySize}/${def.value ? STRUCTS[def.value].size : '-'} (layout mismatch: not adopting)`,
      );
    }
    this.fds.set(name, info);
  }

  private attach(cgroup: string): void {
    const obj = this.obj!;
    const want = cgroupId(cgroup);
    for (const [prog, pin] of Object.entries(CGROUP_PROGRAMS)) {
      const linkPin = this.linkPin(pin);
      const info = fs.existsSync(linkPin) ? this.addon.linkInfo(linkPin) : null;
      if (info && info.cgroupId === 0n) {
        // Its cgroup was removed (and maybe created again under the same path): the kernel
        // auto-detached the link, which now steers nothing. Drop the pin and attach afresh.
        this.addon.detachLink(linkPin);
      } else if (info && info.cgroupId !== undefined && info.cgroupId !== want) {
        throw new Error(
          `${linkPin} is attached to another cgroup (id ${info.cgroupId}, not ${cgroup}, id ${want}): ` +
            'not adopting it; remove the old pins first (MESH_TEARDOWN=1 with the same node and pin dir)',
        );
      }
      this.attachments[prog] = obj.attachCgroup(prog, cgroup, linkPin);
    }
    // The sockhash holds the sk_msg program; attaching again replaces it (the restart case).
    obj.attachSkMsg(SK_MSG_PROGRAM, SOCKHASH);
    this.attachments[SK_MSG_PROGRAM] = 'attached';
  }

  /** For compile(): the real cgroup id of a workload of this node, once its cgroup exists. */
  readonly cgroupIdOf: CgroupIdOf = (w) =>
    this.cgroup ? workloadCgroupId(this.cgroup, w.namespace, w.name) : undefined;

  /** Creates the cgroup `<namespace>.<name>` a workload's processes are to run in. */
  workloadCgroup(namespace: string, name: string): string {
    if (!this.cgroup) throw new Error('BpfMapBackend: no cgroup (MESH_CGROUP) to create workload cgroups in');
    return ensureWorkloadCgroup(this.cgroup, namespace, name);
  }

  linkPin(name: string): string {
    return path.join(this.pinDir, 'links', name);
  }

  /** The fd of a map (for tools and tests that talk to the addon directly). */
  mapInfo(map: MapName): NativeMapInfo {
    if (this.closed) throw new MapError('EBUSY', map, 'lookup', 0, 'backend closed');
    const info = this.fds.get(map);
    if (!info) throw new MapError('EINVAL', map, 'lookup', 0, 'map not open');
    return info;
  }

  private fail(err: unknown, map: MapName, op: MapError['op']): never {
    if (!isNativeError(err)) throw err;
    // MapError speaks a small errno vocabulary; other names (ENOTSOCK...) travel in detail.
    const code: ErrnoName = err.code in ERRNO ? (err.code as ErrnoName) : 'EIO';
    const e = new MapError(code, map, op, err.done ?? 0, err.message);
    (e as Error & { cause?: unknown }).cause = err;
    throw e;
  }

  async lookup(map: MapName, key: Uint8Array): Promise<Uint8Array | undefined> {
    const info = this.mapInfo(map);
    try {
      const v = this.addon.lookup(info.fd, key, info.valueSize);
      return v ? new Uint8Array(v) : undefined;
    } catch (err) {
      this.fail(err, map, 'lookup');
    }
  }

  /** The whole map in one syscall loop of the addon (an iteration, for errors). */
  private dump(map: MapName): { info: NativeMapInfo; dump: ReturnType<NativeAddon['dump']> } {
    const info = this.mapInfo(map);
    try {
      return { info, dump: this.addon.dump(info.fd, info.keySize, info.valueSize) };
    } catch (err) {
      this.fail(err, map, 'iterate');
    }
  }

  async *iterate(map: MapName): AsyncIterable<MapEntry> {
    const { info, dump } = this.dump(map);
    for (let i = 0; i < dump.count; i++) {
      yield [
        new Uint8Array(dump.keys.subarray(i * info.keySize, (i + 1) * info.keySize)),
        new Uint8Array(dump.values.subarray(i * info.valueSize, (i + 1) * info.valueSize)),
      ];
    }
  }

  /** Every entry as byte strings: one dump, one latin1 string per buffer, a slice per entry. */
  async readStrings(map: MapName): Promise<Array<[string, string]>> {
    const { info, dump } = this.dump(map);
    const ks = info.keySize;
    const vs = info.valueSize;
    const keys = dump.keys.toString('latin1', 0, dump.count * ks);
    const values = dump.values.toString('latin1', 0, dump.count * vs);
    const out = new Array<[string, string]>(dump.count);
    for (let i = 0; i < dump.count; i++)
      out[i] = [keys.slice(i * ks, (i + 1) * ks), values.slice(i * vs, (i + 1) * vs)];
    return out;
  }

  /** The map's reusable batch buffers (one contiguous key and value buffer per map). */
  private buffersOf(map: MapName, info: NativeMapInfo): BatchBuffers {
    let b = this.buffers.get(map);
    if (!b) {
      b = new BatchBuffers(map, info.keySize, info.valueSize);
      this.buffers.set(map, b);
    }
    return b;
  }

  private writeBatch(map: MapName, info: NativeMapInfo, keys: Buffer, values: Buffer, n: number): void {
    try {
      this.addon.updateBatch(info.fd, keys, values, n, BPF_ANY);
    } catch (err) {
      this.fail(err, map, 'update');
    }
  }

  private deleteBatch(map: MapName, info: NativeMapInfo, keys: Buffer, n: number): void {
    try {
      this.addon.deleteBatch(info.fd, keys, n);
    } catch (err) {
      this.fail(err, map, 'delete');
    }
  }

  async update(map: MapName, entries: readonly MapEntry[]): Promise<void> {
    this.updateNow(map, entries);
  }

  // The batch syscalls are synchronous: the reconciler's paths below return without a promise.
  private updateNow(map: MapName, entries: readonly MapEntry[]): void {
    const info = this.mapInfo(map);
    if (entries.length === 0) return;
    const [keys, values] = this.buffersOf(map, info).packEntries(entries);
    this.writeBatch(map, info, keys, values, entries.length);
  }

  /** The reconciler's path: a batch of byte-string keys and values, one latin1 write per buffer. */
  updateStrings(map: MapName, keys: readonly string[], values: readonly string[]): void {
    const info = this.mapInfo(map);
    if (keys.length === 0) return;
    const [kb, vb] = this.buffersOf(map, info).packStrings(keys, values);
    this.writeBatch(map, info, kb, vb, keys.length);
  }

  async delete(map: MapName, keys: readonly Uint8Array[]): Promise<void> {
    const info = this.mapInfo(map);
    if (keys.length === 0) return;
    this.deleteBatch(map, info, this.buffersOf(map, info).packKeys(keys), keys.length);
  }

  deleteStrings(map: MapName, keys: readonly string[]): void {
    const info = this.mapInfo(map);
    if (keys.length === 0) return;
    this.deleteBatch(map, info, this.buffersOf(map, info).packStringKeys(keys), keys.length);
  }

  async readMeta(): Promise<Meta | undefined> {
    const v = await this.lookup('mesh_meta', META_KEY);
    return v ? decodeMeta(v) : undefined;
  }

  writeMeta(meta: Meta): void {
    this.updateNow('mesh_meta', [[META_KEY, encodeMeta(meta)]]);
  }

  /** Drops this process's fds; pinned maps and links keep serving traffic. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const info of this.fds.values()) this.addon.closeFd(info.fd);
    this.fds.clear();
    this.buffers.clear();
    this.obj?.close();
    this.obj = undefined;
  }

  /**
   * The agent's own cleanup: detaches every program, unpins links and maps and removes
   * the pin dir. Works on a closed backend and on pins left by a dead agent as well.
   */
  async teardown(): Promise<void> {
    // sk_msg lives in the sockhash: detach it while we still hold the program.
    if (this.obj && !this.closed) {
      try {
        this.obj.detachSkMsg(SK_MSG_PROGRAM, SOCKHASH);
      } catch {
        // not attached (maps-only backend): nothing to detach
      }
    }
    await this.close();
    teardownPinDir(this.pinDir, this.addon);
  }
}

/** Detaches the pinned links of a pin dir and removes it (also for pins of a dead agent). */
export function teardownPinDir(pinDir: string, addon: NativeAddon = loadAddon()): void {
  const dir = checkPinDir(pinDir);
  if (!fs.existsSync(dir)) return;
  const links = path.join(dir, 'links');
  if (fs.existsSync(links)) {
    for (const name of fs.readdirSync(links)) addon.detachLink(path.join(links, name));
    fs.rmdirSync(links);
  }
  // Unpinning the last reference frees a map; the sockhash takes its sk_msg program along.
  for (const name of fs.readdirSync(dir)) fs.unlinkSync(path.join(dir, name));
  fs.rmdirSync(dir);
  // The default layout nests node dirs in a shared parent (/sys/fs/bpf/meshplane): drop
  // it when this was the last node, never when it is a mount point itself.
  const parent = path.dirname(dir);
  if (!bpffsMounts().includes(parent)) {
    try {
      fs.rmdirSync(parent);
    } catch {
      // other nodes still pinned there
    }
  }
}
