import { type MapEntry, MapError } from '../backend';

/*
 * One map's batch buffers: every key of a batch back to back in one buffer, every value
 * in another, as bpf_map_update_batch / bpf_map_delete_batch take them. The buffers are
 * kept and reused from batch to batch (they only grow), so packing a batch allocates
 * nothing but two views. Callers hand the views to the addon synchronously, before the
 * next pack overwrites them.
 *
 * From hex (what the reconciler's ops hold) a batch is decoded by ONE native hex decode
 * per buffer, instead of two allocations and two copies per entry.
 */

type Op = 'update' | 'delete';

const HEX_DIGITS = /^[0-9a-fA-F]*$/;

// A byte loop beats TypedArray.set (a call into C++) for structs of a few bytes; set wins
// from a few dozen bytes on (mesh_id_names values, the meta entry).
const SET_FROM = 32;

function copy(dst: Uint8Array, at: number, src: Uint8Array): void {
  const n = src.length;
  if (n >= SET_FROM) dst.set(src, at);
  else for (let j = 0; j < n; j++) dst[at + j] = src[j]!;
}

export class BatchBuffers {
  private keys: Buffer = Buffer.allocUnsafeSlow(0);
  private values: Buffer = Buffer.allocUnsafeSlow(0);

  constructor(
    readonly map: string,
    readonly keySize: number,
    readonly valueSize: number,
  ) {}

  private reserve(n: number): void {
    if (this.keys.length < n * this.keySize) this.keys = Buffer.allocUnsafeSlow(n * this.keySize);
    if (this.values.length < n * this.valueSize) this.values = Buffer.allocUnsafeSlow(n * this.valueSize);
  }

  private sizeError(op: Op, i: number, what: string, got: number, want: number): MapError {
    return new MapError('EINVAL', this.map, op, i, `entry ${i}: ${what} of ${got} bytes, expected ${want}`);
  }

  /** Entries as bytes -> [keys, values], each exactly n entries long. */
  packEntries(entries: readonly MapEntry[]): [Buffer, Buffer] {
    const n = entries.length;
    const ks = this.keySize;
    const vs = this.valueSize;
    this.reserve(n);
    const kb = this.keys;
    const vb = this.values;
    for (let i = 0; i < n; i++) {
      const e = entries[i]!;
      const k = e[0];
      const v = e[1];
      if (k.length !== ks) throw this.sizeError('update', i, 'key', k.length, ks);
      if (v.length !== vs) throw this.sizeError('update', i, 'value', v.length, vs);
      copy(kb, i * ks, k);
      copy(vb, i * vs, v);
    }
    return [kb.subarray(0, n * ks), vb.subarray(0, n * vs)];
  }

  /** Keys as bytes -> one buffer of n keys. */
  packKeys(keys: readonly Uint8Array[]): Buffer {
    const n = keys.length;
    const ks = this.keySize;
    this.reserve(n);
    const kb = this.keys;
    for (let i = 0; i < n; i++) {
      const k = keys[i]!;
      if (k.length !== ks) throw this.sizeError('delete', i, 'key', k.length, ks);
      copy(kb, i * ks, k);
    }
    return kb.subarray(0, n * ks);
  }

  /** Hex keys and values (as plan ops hold them) -> [keys, values]. */
  packHex(keys: readonly string[], values: readonly string[]): [Buffer, Buffer] {
    if (values.length !== keys.length)
      throw new MapError('EINVAL', this.map, 'update', 0, `${keys.length} keys but ${values.length} values`);
    this.reserve(keys.length);
    return [
      this.decode(this.keys, keys, this.keySize, 'key', 'update'),
      this.decode(this.values, values, this.valueSize, 'value', 'update'),
    ];
  }

  /** Hex keys -> one buffer of n keys. */
  packHexKeys(keys: readonly string[]): Buffer {
    this.reserve(keys.length);
    return this.decode(this.keys, keys, this.keySize, 'key', 'delete');
  }

  private decode(buf: Buffer, hex: readonly string[], size: number, what: string, op: Op): Buffer {
    const n = hex.length;
    // Lengths first: a short and a long entry could otherwise add up to the right total.
    for (let i = 0; i < n; i++)
      if (hex[i]!.length !== size * 2) throw this.sizeError(op, i, what, hex[i]!.length / 2, size);
    const written = buf.write(hex.join(''), 0, n * size, 'hex');
    if (written !== n * size) {
      // Node's hex decoder stops at the first pair that is not hex: name that entry.
      const i = hex.findIndex((h) => !HEX_DIGITS.test(h));
      throw new MapError(
        'EINVAL',
        this.map,
        op,
        Math.max(i, 0),
        `entry ${Math.max(i, 0)}: ${what} is not hex`,
      );
    }
    return buf.subarray(0, n * size);
  }
}
