import { type FieldDef, type StructDef, TYPE_SIZE } from './layout';

/*
 * The same encoding as encodeStruct/decodeStruct, straight to and from lower-
 * case hex strings. Compiled map sets hold 100k+ entries at 10k services; as
 * strings they cost a fraction of the memory and GC of Uint8Arrays, compare
 * with ===, and hash as Map keys. Bytes are only made at the backend boundary.
 * codec.spec.ts checks both paths agree on every struct.
 */

const HEX2 = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

type Writer = (v: unknown, where: string) => string;
type Reader = (hex: string) => number | bigint | string;

function checkInt(v: unknown, max: number, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max)
    throw new RangeError(`${where}: ${String(v)} out of range`);
  return v;
}

function le32(n: number): string {
  return HEX2[n & 0xff]! + HEX2[(n >>> 8) & 0xff]! + HEX2[(n >>> 16) & 0xff]! + HEX2[n >>> 24]!;
}

function byteAt(hex: string, i: number): number {
  return parseInt(hex.substr(i * 2, 2), 16);
}

function writer(f: FieldDef): Writer {
  if (f.name === 'pad') {
    const zeros = '00'.repeat(f.count * TYPE_SIZE[f.type]);
    return () => zeros;
  }
  switch (f.type) {
    case 'u8':
      return (v, w) => HEX2[checkInt(v, 0xff, w)]!;
    case 'u16':
      return (v, w) => {
        const n = checkInt(v, 0xffff, w);
        return HEX2[n & 0xff]! + HEX2[n >>> 8]!;
      };
    case 'be16':
      return (v, w) => {
        const n = checkInt(v, 0xffff, w);
        return HEX2[n >>> 8]! + HEX2[n & 0xff]!;
      };
    case 'u32':
      return (v, w) => le32(checkInt(v, 0xffffffff, w));
    case 'be32':
      return (v, w) => checkInt(v, 0xffffffff, w).toString(16).padStart(8, '0');
    case 'u64':
      return (v, w) => {
        const big = typeof v === 'bigint' ? v : BigInt(v as number);
        if (big < 0n || big > 0xffffffffffffffffn) throw new RangeError(`${w}: ${big} does not fit u64`);
        return le32(Number(big & 0xffffffffn)) + le32(Number(big >> 32n));
      };
    case 'char':
      return (v, w) => {
        const bytes = utf8.encode(v === undefined ? '' : String(v));
        if (bytes.length >= f.count)
          throw new RangeError(`${w}: "${String(v)}" is longer than ${f.count - 1} bytes`);
        let s = '';
        for (const b of bytes) s += HEX2[b]!;
        return s + '00'.repeat(f.count - bytes.length);
      };
  }
}

function reader(f: FieldDef): Reader {
  const o = f.offset;
  switch (f.type) {
    case 'u8':
      return (h) => byteAt(h, o);
    case 'u16':
      return (h) => byteAt(h, o) | (byteAt(h, o + 1) << 8);
    case 'be16':
      return (h) => parseInt(h.substr(o * 2, 4), 16);
    case 'u32':
      return (h) =>
        (byteAt(h, o) | (byteAt(h, o + 1) << 8) | (byteAt(h, o + 2) << 16) | (byteAt(h, o + 3) << 24)) >>> 0;
    case 'be32':
      return (h) => parseInt(h.substr(o * 2, 8), 16);
    case 'u64':
      return (h) => {
        const lo =
          (byteAt(h, o) | (byteAt(h, o + 1) << 8) | (byteAt(h, o + 2) << 16) | (byteAt(h, o + 3) << 24)) >>>
          0;
        const hi =
          (byteAt(h, o + 4) |
            (byteAt(h, o + 5) << 8) |
            (byteAt(h, o + 6) << 16) |
            (byteAt(h, o + 7) << 24)) >>>
          0;
        return (BigInt(hi) << 32n) | BigInt(lo);
      };
    case 'char':
      return (h) => {
        const raw = Buffer.from(h.substr(o * 2, f.count * 2), 'hex');
        const nul = raw.indexOf(0);
        return fromUtf8.decode(nul < 0 ? raw : raw.subarray(0, nul));
      };
  }
}

/** A struct encoder to hex, precompiled from the table (fields are contiguous: see layout.spec). */
export function hexEncoder(def: StructDef): (value: Record<string, unknown>) => string {
  const parts = def.fields.map((f) => ({
    name: f.name,
    write: writer(f),
    where: `${def.name}.${f.name}`,
    char: f.type === 'char',
  }));
  return (value) => {
    let s = '';
    for (const p of parts) {
      const v = value[p.name];
      if (v === undefined && !p.char && p.name !== 'pad') throw new TypeError(`${p.where} is missing`);
      s += p.write(v, p.where);
    }
    return s;
  };
}

export function hexDecoder(def: StructDef): (hex: string) => Record<string, number | bigint | string> {
  const parts = def.fields.filter((f) => f.name !== 'pad').map((f) => ({ name: f.name, read: reader(f) }));
  return (hex) => {
    if (hex.length !== def.size * 2)
      throw new RangeError(`${def.name}: expected ${def.size} bytes, got ${hex.length / 2}`);
    const out: Record<string, number | bigint | string> = {};
    for (const p of parts) out[p.name] = p.read(hex);
    return out;
  };
}
