import { type FieldDef, type StructDef, TYPE_SIZE } from './layout';

/*
 * The same encoding as encodeStruct/decodeStruct, straight to and from BYTE STRINGS:
 * one char per byte (char codes 0-255, what V8 stores as a one-byte string). Compiled
 * map sets hold 100k+ entries at 10k services; as strings they hash as Map keys and
 * compare with ===, and at one char per byte they are half as long as hex. Every
 * managed key and value but mesh_id_names values is at most 12 bytes, which V8 keeps
 * as one flat string (no cons tree), and a batch becomes kernel bytes with one latin1
 * write per buffer (bpf/pack.ts). Humans see hex (codec.ts byteStringToHex).
 * codec.spec.ts checks both paths agree on every struct.
 */

/** The one-char string of each byte. */
export const CHR = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i));
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** Any char that is not one byte (a byte string holds char codes 0-255 only). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the class is every byte, NUL included
export const NOT_A_BYTE = /[^\x00-\xff]/;

// Structs from this size on are built from a byte array in one go: concatenating that
// many pieces would leave a cons tree (more memory, flattened again on every batch).
const FLAT_FROM = 13;

type Writer = (v: unknown, where: string) => string;
type Reader = (s: string) => number | bigint | string;

function checkInt(v: unknown, max: number, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max)
    throw new RangeError(`${where}: ${String(v)} out of range`);
  return v;
}

/** A u32, little-endian, as a 4-char byte string. */
export function le32(n: number): string {
  return CHR[n & 0xff]! + CHR[(n >>> 8) & 0xff]! + CHR[(n >>> 16) & 0xff]! + CHR[n >>> 24]!;
}

function be32(n: number): string {
  return CHR[n >>> 24]! + CHR[(n >>> 16) & 0xff]! + CHR[(n >>> 8) & 0xff]! + CHR[n & 0xff]!;
}

function u64(v: unknown, where: string): bigint {
  const big = typeof v === 'bigint' ? v : BigInt(v as number);
  if (big < 0n || big > 0xffffffffffffffffn) throw new RangeError(`${where}: ${big} does not fit u64`);
  return big;
}

function utf8Bytes(v: unknown, count: number, where: string): Uint8Array {
  const bytes = utf8.encode(v === undefined ? '' : String(v));
  // Keep one NUL at the end so C code may treat it as a string.
  if (bytes.length >= count)
    throw new RangeError(`${where}: "${String(v)}" is longer than ${count - 1} bytes`);
  return bytes;
}

function writer(f: FieldDef): Writer {
  if (f.name === 'pad') {
    const zeros = CHR[0]!.repeat(f.count * TYPE_SIZE[f.type]);
    return () => zeros;
  }
  switch (f.type) {
    case 'u8':
      return (v, w) => CHR[checkInt(v, 0xff, w)]!;
    case 'u16':
      return (v, w) => {
        const n = checkInt(v, 0xffff, w);
        return CHR[n & 0xff]! + CHR[n >>> 8]!;
      };
    case 'be16':
      return (v, w) => {
        const n = checkInt(v, 0xffff, w);
        return CHR[n >>> 8]! + CHR[n & 0xff]!;
      };
    case 'u32':
      return (v, w) => le32(checkInt(v, 0xffffffff, w));
    case 'be32':
      return (v, w) => be32(checkInt(v, 0xffffffff, w));
    case 'u64':
      return (v, w) => {
        const big = u64(v, w);
        return le32(Number(big & 0xffffffffn)) + le32(Number(big >> 32n));
      };
    case 'char':
      return (v, w) => {
        const bytes = utf8Bytes(v, f.count, w);
        let s = '';
        for (const b of bytes) s += CHR[b]!;
        return s + CHR[0]!.repeat(f.count - bytes.length);
      };
  }
}

/** Writes one field into `out` at its offset (the path of structs built flat). */
function byteWriter(f: FieldDef): (out: Uint8Array, v: unknown, where: string) => void {
  const o = f.offset;
  if (f.name === 'pad') return () => undefined;
  const le = (out: Uint8Array, n: number, bytes: number) => {
    for (let i = 0; i < bytes; i++) out[o + i] = (n >>> (8 * i)) & 0xff;
  };
  const be = (out: Uint8Array, n: number, bytes: number) => {
    for (let i = 0; i < bytes; i++) out[o + i] = (n >>> (8 * (bytes - 1 - i))) & 0xff;
  };
  switch (f.type) {
    case 'u8':
      return (out, v, w) => le(out, checkInt(v, 0xff, w), 1);
    case 'u16':
      return (out, v, w) => le(out, checkInt(v, 0xffff, w), 2);
    case 'be16':
      return (out, v, w) => be(out, checkInt(v, 0xffff, w), 2);
    case 'u32':
      return (out, v, w) => le(out, checkInt(v, 0xffffffff, w), 4);
    case 'be32':
      return (out, v, w) => be(out, checkInt(v, 0xffffffff, w), 4);
    case 'u64':
      return (out, v, w) => {
        const big = u64(v, w);
        for (let i = 0; i < 8; i++) out[o + i] = Number((big >> BigInt(8 * i)) & 0xffn);
      };
    case 'char':
      return (out, v, w) => out.set(utf8Bytes(v, f.count, w), o);
  }
}

function charAt(s: string, i: number): number {
  return s.charCodeAt(i);
}

function readLe(s: string, o: number, bytes: number): number {
  let n = 0;
  for (let i = bytes - 1; i >= 0; i--) n = n * 256 + charAt(s, o + i);
  return n;
}

function readBe(s: string, o: number, bytes: number): number {
  let n = 0;
  for (let i = 0; i < bytes; i++) n = n * 256 + charAt(s, o + i);
  return n;
}

function reader(f: FieldDef): Reader {
  const o = f.offset;
  switch (f.type) {
    case 'u8':
      return (s) => charAt(s, o);
    case 'u16':
      return (s) => readLe(s, o, 2);
    case 'be16':
      return (s) => readBe(s, o, 2);
    case 'u32':
      return (s) => readLe(s, o, 4);
    case 'be32':
      return (s) => readBe(s, o, 4);
    case 'u64':
      return (s) => (BigInt(readLe(s, o + 4, 4)) << 32n) | BigInt(readLe(s, o, 4));
    case 'char':
      return (s) => {
        const raw = Buffer.from(s.slice(o, o + f.count), 'latin1');
        const nul = raw.indexOf(0);
        return fromUtf8.decode(nul < 0 ? raw : raw.subarray(0, nul));
      };
  }
}

function missing(value: Record<string, unknown>, f: FieldDef): boolean {
  return value[f.name] === undefined && f.type !== 'char' && f.name !== 'pad';
}

/** A struct encoder to a byte string, precompiled from the table (fields are contiguous: see layout.spec). */
export function byteStringEncoder(def: StructDef): (value: Record<string, unknown>) => string {
  if (def.size >= FLAT_FROM) {
    const parts = def.fields.map((f) => ({ f, write: byteWriter(f), where: `${def.name}.${f.name}` }));
    return (value) => {
      const out = new Uint8Array(def.size);
      for (const p of parts) {
        if (missing(value, p.f)) throw new TypeError(`${p.where} is missing`);
        p.write(out, value[p.f.name], p.where);
      }
      return String.fromCharCode.apply(null, out as unknown as number[]);
    };
  }
  const parts = def.fields.map((f) => ({
    f,
    name: f.name,
    write: writer(f),
    where: `${def.name}.${f.name}`,
  }));
  return (value) => {
    let s = '';
    for (const p of parts) {
      if (missing(value, p.f)) throw new TypeError(`${p.where} is missing`);
      s += p.write(value[p.name], p.where);
    }
    return s;
  };
}

export function byteStringDecoder(def: StructDef): (s: string) => Record<string, number | bigint | string> {
  const parts = def.fields.filter((f) => f.name !== 'pad').map((f) => ({ name: f.name, read: reader(f) }));
  return (s) => {
    if (s.length !== def.size)
      throw new RangeError(`${def.name}: expected ${def.size} bytes, got ${s.length}`);
    if (NOT_A_BYTE.test(s)) throw new RangeError(`${def.name}: not a byte string`);
    const out: Record<string, number | bigint | string> = {};
    for (const p of parts) out[p.name] = p.read(s);
    return out;
  };
}
