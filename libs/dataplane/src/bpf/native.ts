import fs from 'node:fs';
import path from 'node:path';

/*
 * Typed view of native/ (meshplane_bpf.node, node-addon-api over libbpf 1.1). The addon
 * only moves bytes and manages kernel objects; every decision is made in TypeScript.
 * Errors it throws carry `code` (errno name), `errno` (negative), `syscall`, and
 * `map` / `done` where they apply.
 */

export interface NativeMapInfo {
  fd: number;
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  id: number;
}

export interface NativeObjectMap {
  name: string;
  fd: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  pinPath: string | null;
}

export interface NativeBpfObject {
  load(): void;
  programs(): Array<{ name: string; section: string; fd: number }>;
  maps(): NativeObjectMap[];
  /** Attaches and pins a link, or adopts (BPF_LINK_UPDATE) a link already pinned there. */
  attachCgroup(program: string, cgroupDir: string, linkPin: string): 'attached' | 'adopted';
  attachSkMsg(program: string, sockhash: string): void;
  detachSkMsg(program: string, sockhash: string): boolean;
  close(): void;
}

export interface NativeLinkInfo {
  id: number;
  progId: number;
  type: number;
  cgroupId?: bigint;
  attachType?: number;
}

export interface NativeAddon {
  BpfObject: new (objectPath: string, pinRoot: string) => NativeBpfObject;
  detachLink(linkPin: string): boolean;
  linkInfo(linkPin: string): NativeLinkInfo | null;
  probe(): true;
  libbpfVersion(): string;
  openPinned(path: string): NativeMapInfo;
  closeFd(fd: number): void;
  lookup(fd: number, key: Uint8Array, valueSize: number): Buffer | null;
  update(fd: number, key: Uint8Array, value: Uint8Array, flags: number): void;
  delete(fd: number, key: Uint8Array): boolean;
  updateBatch(fd: number, keys: Uint8Array, values: Uint8Array, count: number, flags: number): number;
  deleteBatch(fd: number, keys: Uint8Array, count: number): number;
  keys(fd: number, keySize: number): Buffer;
  dump(fd: number, keySize: number, valueSize: number): { keys: Buffer; values: Buffer; count: number };
}

/** An exception from the addon. */
export interface NativeError extends Error {
  code: string;
  errno: number;
  syscall: string;
  map?: string;
  done?: number;
}

/** Duck-typed: the addon's Error comes from Node's main realm, not from a Jest/vm context's. */
export function isNativeError(err: unknown): err is NativeError {
  const e = err as Partial<NativeError> | null;
  return typeof e === 'object' && e !== null && typeof e.code === 'string' && typeof e.syscall === 'string';
}

/** BPF_ANY / BPF_NOEXIST / BPF_EXIST update flags. */
export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;

/**
 * The repository root: the nearest ancestor holding native/binding.gyp. Works from the
 * sources (ts-jest/swc) and from dist/ alike, since both sit below the root.
 */
export function repoRoot(from = __dirname): string {
  let dir = from;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'native', 'binding.gyp'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`meshplane: no native/binding.gyp above ${from}`);
    dir = up;
  }
}

/** Where the built addon and BPF object live (overridable for packaged installs). */
export function addonPath(): string {
  return (
    process.env.MESH_BPF_ADDON ?? path.join(repoRoot(), 'native', 'build', 'Release', 'meshplane_bpf.node')
  );
}

export function objectPath(): string {
  return process.env.MESH_BPF_OBJECT ?? path.join(repoRoot(), 'bpf', 'mesh.bpf.o');
}

let cached: NativeAddon | undefined;

/** Loads the addon once; throws with a hint when it was not built. */
export function loadAddon(): NativeAddon {
  if (cached) return cached;
  const file = addonPath();
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: run scripts/ensure-bpf.sh`);
  cached = require(file) as NativeAddon;
  return cached;
}
