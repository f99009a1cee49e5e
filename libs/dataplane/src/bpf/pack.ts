import { type MapEntry, MapError } from '../backend';
import { NOT_A_BYTE } from '../bytestr';

/*
 * One map's batch buffers: every key of a batch back to back in one buffer, every value
 * in another, as bpf_map_update_batch / bpf_map_delete_batch take them. The buffers are
 * kept and reused from batch to batch (they only grow), so packing a batch allocates
 * nothing but two views. Callers hand the views to the addon synchronously, before the
 * next pack overwrites them.
 *
 * From byte strings (what the reconciler's ops hold: one char per byte) a batch is
 * concatenated into one string per buffer and copied by ONE latin1 write, instead of two
 * allocations and two copies per entry: the concatenation is a rope of the entries' own
 * flat strings, and the write flattens it straight into the buffer.
 */

type Op = 'update' | 'delete';

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

  /** Byte-string keys and values (as plan ops hold them) -> [keys, values]. */
  packStrings(keys: readonly string[], values: readonly string[]): [Buffer, Buffer] {
    const n = keys.length;
    if (values.length !== n)
      throw new MapError('EINVAL', this.map, 'update', 0, `${n} keys but ${values.length} values`);
    const ks = this.keySize;
    const vs = this.valueSize;
    // Sizes are checked entry by entry as the ropes grow: a short and a long entry could
    // otherwise add up to the right total.
    let kr = '';
    let vr = '';
    for (let i = 0; i < n; i++) {
      const k = keys[i]!;
      const v = values[i]!;
      if (k.length !== ks) throw this.sizeError('update', i, 'key', k.length, ks);
      if (v.length !== vs) throw this.sizeError('update', i, 'value', v.length, vs);
      kr += k;
      vr += v;
    }
    this.reserve(n);
    return [
      this.write(this.keys, kr, keys, 'key', 'update'),
      this.write(this.values, vr, values, 'value', 'update'),
    ];
  }

  /** Byte-string keys -> one buffer of n keys. */
  packStringKeys(keys: readonly string[]): Buffer {
    const n = keys.length;
    const ks = this.keySize;
    let kr = '';
    for (let i = 0; i < n; i++) {
      const k = keys[i]!;
      if (k.length !== ks) throw this.sizeError('delete', i, 'key', k.length, ks);
      kr += k;
    }
    this.reserve(n);
    return this.write(this.keys, kr, keys, 'key', 'delete');
  }

  private write(buf: Buffer, rope: string, parts: readonly string[], what: string, op: Op): Buffer {
    const len = buf.write(rope, 0, rope.length, 'latin1');
    // latin1 keeps only the low byte of a wider char: refuse such a batch, naming the entry.
    // The test costs next to nothing on a one-byte string (V8 knows none can match).
    if (len !== rope.length || NOT_A_BYTE.test(rope)) {
      const i = Math.max(
        0,
        parts.findIndex((s) => NOT_A_BYTE.test(s)),
      );
      throw new MapError('EINVAL', this.map, op, i, `entry ${i}: ${what} is not a byte string`);
    }
    return buf.subarray(0, len);
  }
}
