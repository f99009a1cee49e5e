import { le32 } from './bytestr';
import { codecs, toByteString } from './codec';
import { LAYOUT_VERSION, MANAGED_MAPS, type MapName, META_MAGIC } from './layout';
import { emptyMapSet, type MapSet } from './maps';

/** One map entry as the kernel sees it: key and value bytes. */
export type MapEntry = [key: Uint8Array, value: Uint8Array];

/**
 * Where the maps live: pinned BPF maps (issue 5, through native/) or memory.
 * Shaped like Cilium's StateDB reconciler operations: maps are addressed by
 * name, writes are BATCHES of byte entries (one syscall per batch in BPF), and
 * both update and delete are idempotent (deleting a missing key is not an
 * error). A failed batch may have applied a prefix of its entries, as
 * bpf_map_update_batch does; MapError.done says how many.
 */
export interface MapBackend {
  /** `bpf` or `memory`: shown in logs and status, never used for decisions. */
  readonly kind: string;
  lookup(map: MapName, key: Uint8Array): Promise<Uint8Array | undefined>;
  iterate(map: MapName): AsyncIterable<MapEntry>;
  update(map: MapName, entries: readonly MapEntry[]): Promise<void>;
  delete(map: MapName, keys: readonly Uint8Array[]): Promise<void>;
  /**
   * Optional fast paths for the same batches as byte strings (one char per byte: what
   * plan ops and map sets hold), with the same checks: EINVAL for a key or value of
   * another size or a char above 0xff, ordered, `done` on a partial failure.
   * They may complete synchronously (return nothing, throw the MapError): the reconciler
   * awaits only a promise. A map write is a syscall or a table write, and with 50 agents
   * per simulation thread the await per batch and its turns of the microtask queue were
   * a visible share of an apply.
   */
  updateStrings?(map: MapName, keys: readonly string[], values: readonly string[]): void | Promise<void>;
  deleteStrings?(map: MapName, keys: readonly string[]): void | Promise<void>;
  /** Optional fast path for iterate(): every entry as byte strings (a snapshot). */
  readStrings?(map: MapName): Promise<Iterable<readonly [key: string, value: string]>>;
  /** The checkpoint stored WITH the maps; undefined when no agent has written one. */
  readMeta(): Promise<Meta | undefined>;
  /** May complete synchronously, like the string paths. */
  writeMeta(meta: Meta): void | Promise<void>;
  close(): Promise<void>;
}

/** mesh_meta as the agent uses it. */
export interface Meta {
  layoutVersion: number;
  appliedRevision: number;
  appliedAtMs: number;
  mapsDigest: bigint;
  node: string;
  cluster: string;
}

/** Errno names and numbers the backends report (Linux values). */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  E2BIG: 7,
  ENOMEM: 12,
  EBUSY: 16,
  EINVAL: 22,
  ENOSPC: 28,
} as const;

export type ErrnoName = keyof typeof ERRNO;

/** A failed map operation, named like the syscall error it stands for. */
export class MapError extends Error {
  readonly errno: number;
  constructor(
    readonly code: ErrnoName,
    readonly map: string,
    readonly op: 'lookup' | 'update' | 'delete' | 'iterate',
    /** Entries of the batch applied before the failure. */
    readonly done: number,
    detail?: string,
  ) {
    super(
      `${op} ${map}: ${code}${detail ? ` (${detail})` : ''}${op === 'lookup' || op === 'iterate' ? '' : `, ${done} applied`}`,
    );
    this.name = 'MapError';
    this.errno = ERRNO[code];
  }
}

export function encodeMeta(meta: Meta): Uint8Array {
  return codecs.metaValue.encode({
    magic: META_MAGIC,
    layout_version: meta.layoutVersion,
    applied_revision: BigInt(meta.appliedRevision),
    applied_at_ms: BigInt(meta.appliedAtMs),
    maps_digest: meta.mapsDigest,
    node: meta.node,
    cluster: meta.cluster,
  });
}

const u64 = (n: bigint) => le32(Number(n & 0xffffffffn)) + le32(Number(n >> 32n));
// A safe non-negative integer as u64, without making a BigInt of it (two per checkpoint write).
const u64n = (n: number) => le32(n >>> 0) + le32(Math.floor(n / 0x100000000));

/**
 * encodeMeta as a byte string, what the memory backend stores: written after every apply, and
 * encoding the whole struct (two 64-byte names) was ~9% of an agent's apply. The names, the same
 * on every write of one agent, are encoded once per encoder; the rest is written here, and
 * whatever the fast path does not check goes through the codec (its own errors).
 */
export class MetaEncoder {
  private names: { node: string; cluster: string; bytes: string } | undefined;

  encode(meta: Meta): string {
    const { layoutVersion: v, appliedRevision: rev, appliedAtMs: at, mapsDigest: digest } = meta;
    const fast =
      Number.isInteger(v) &&
      v >= 0 &&
      v <= 0xffffffff &&
      Number.isSafeInteger(rev) &&
      rev >= 0 &&
      Number.isSafeInteger(at) &&
      at >= 0 &&
      typeof digest === 'bigint' &&
      digest >= 0n &&
      digest <= 0xffffffffffffffffn;
    if (!fast) return toByteString(encodeMeta(meta));
    if (this.names?.node !== meta.node || this.names.cluster !== meta.cluster) {
      const bytes = toByteString(encodeMeta(meta)).slice(32);
      this.names = { node: meta.node, cluster: meta.cluster, bytes };
    }
    return le32(META_MAGIC) + le32(v) + u64n(rev) + u64n(at) + u64(digest) + this.names.bytes;
  }
}

/** Undefined for the all-zero entry an ARRAY map starts with. */
export function decodeMeta(bytes: Uint8Array): Meta | undefined {
  const v = codecs.metaValue.decode(bytes);
  if (v.magic !== META_MAGIC) return undefined;
  return {
    layoutVersion: v.layout_version,
    appliedRevision: Number(v.applied_revision),
    appliedAtMs: Number(v.applied_at_ms),
    mapsDigest: v.maps_digest,
    node: v.node,
    cluster: v.cluster,
  };
}

export const META_KEY = codecs.metaKey.encode({ index: 0 });
export const META_KEY_STR = toByteString(META_KEY);

/** Reads every agent-managed map of a backend (the full read-back of a resync or restart). */
export async function readMaps(backend: MapBackend): Promise<MapSet> {
  const out = emptyMapSet();
  for (const m of MANAGED_MAPS) {
    const into = out[m];
    if (backend.readStrings) for (const [k, v] of await backend.readStrings(m)) into.set(k, v);
    else for await (const [k, v] of backend.iterate(m)) into.set(toByteString(k), toByteString(v));
  }
  return out;
}

/** The layout this build writes; a meta of another version means the maps are not ours to adopt. */
export function isCurrentLayout(meta: Meta | undefined): boolean {
  return meta === undefined || meta.layoutVersion === LAYOUT_VERSION;
}
