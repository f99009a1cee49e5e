import { byteStringDecoder, byteStringEncoder, NOT_A_BYTE } from './bytestr';
import { type FieldDef, STRUCTS, type StructDef, type StructName } from './layout';

/*
 * Byte-exact encoders and decoders for the structs of bpf/mesh_maps.h, driven by
 * the table in layout.ts (so a field can only move in one place). Objects use
 * the C field names; `pad` fields are never exposed and always encode as zero,
 * which keeps "equal entry" == "equal bytes" for the byte-wise diff.
 *
 * Host-order fields are written little endian: the BPF targets here (x86_64,
 * arm64) are little endian, and the module refuses to load anywhere else rather
 * than write maps the kernel would misread.
 */

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
if (!LITTLE_ENDIAN) throw new Error('@meshplane/dataplane: big-endian hosts are not supported');

export type FieldValue = number | bigint | string;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

function isPad(f: FieldDef): boolean {
  return f.name === 'pad';
}

function writeField(view: DataView, bytes: Uint8Array, f: FieldDef, v: unknown, struct: string): void {
  const where = `${struct}.${f.name}`;
  if (f.type === 'char') {
    const s = v === undefined ? '' : String(v);
    const enc = textEncoder.encode(s);
    // Keep one NUL at the end so C code may treat it as a string.
    if (enc.length >= f.count) throw new RangeError(`${where}: "${s}" is longer than ${f.count - 1} bytes`);
    bytes.set(enc, f.offset);
    return;
  }
  if (f.type === 'u64') {
    const big = typeof v === 'bigint' ? v : BigInt(v as number);
    if (big < 0n || big > 0xffffffffffffffffn) throw new RangeError(`${where}: ${big} does not fit u64`);
    view.setBigUint64(f.offset, big, true);
    return;
  }
  const n = v as number;
  const max = f.type === 'u8' ? 0xff : f.type === 'u16' || f.type === 'be16' ? 0xffff : 0xffffffff;
  if (!Number.isInteger(n) || n < 0 || n > max) throw new RangeError(`${where}: ${String(v)} out of range`);
  switch (f.type) {
    case 'u8':
      view.setUint8(f.offset, n);
      break;
    case 'u16':
      view.setUint16(f.offset, n, true);
      break;
    case 'be16':
      view.setUint16(f.offset, n, false);
      break;
    case 'u32':
      view.setUint32(f.offset, n, true);
      break;
    case 'be32':
      view.setUint32(f.offset, n, false);
      break;
  }
}

function readField(view: DataView, bytes: Uint8Array, f: FieldDef): FieldValue {
  switch (f.type) {
    case 'char': {
      const raw = bytes.subarray(f.offset, f.offset + f.count);
      const nul = raw.indexOf(0);
      return textDecoder.decode(nul < 0 ? raw : raw.subarray(0, nul));
    }
    case 'u64':
      return view.getBigUint64(f.offset, true);
    case 'u8':
      return view.getUint8(f.offset);
    case 'u16':
      return view.getUint16(f.offset, true);
    case 'be16':
      return view.getUint16(f.offset, false);
    case 'u32':
      return view.getUint32(f.offset, true);
    case 'be32':
      return view.getUint32(f.offset, false);
  }
}

/** Encodes `value` (C field names; pads omitted) into a fresh buffer of the struct's size. */
export function encodeStruct(def: StructDef, value: Record<string, unknown>): Uint8Array {
  const bytes = new Uint8Array(def.size);
  const view = new DataView(bytes.buffer);
  for (const f of def.fields) {
    if (isPad(f)) continue;
    const v = value[f.name];
    if (v === undefined && f.type !== 'char') throw new TypeError(`${def.name}.${f.name} is missing`);
    writeField(view, bytes, f, v, def.name);
  }
  return bytes;
}

/** Decodes one struct; throws if `bytes` is not exactly the struct's size. */
export function decodeStruct(def: StructDef, bytes: Uint8Array): Record<string, FieldValue> {
  if (bytes.length !== def.size)
    throw new RangeError(`${def.name}: expected ${def.size} bytes, got ${bytes.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Record<string, FieldValue> = {};
  for (const f of def.fields) if (!isPad(f)) out[f.name] = readField(view, bytes, f);
  return out;
}

export interface Codec<T> {
  readonly def: StructDef;
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
  /** The same bytes as a byte string, one char per byte (the form map sets and plan ops hold). */
  encodeStr(value: T): string;
  decodeStr(s: string): T;
}

function codec<T>(name: StructName): Codec<T> {
  const def: StructDef = STRUCTS[name];
  const toStr = byteStringEncoder(def);
  const fromStr = byteStringDecoder(def);
  return {
    def,
    encode: (v) => encodeStruct(def, v as Record<string, unknown>),
    decode: (b) => decodeStruct(def, b) as T,
    encodeStr: (v) => toStr(v as Record<string, unknown>),
    decodeStr: (s) => fromStr(s) as T,
  };
}

// Addresses are u32 in host arithmetic (127.100.0.1 = 0x7f640001); be32 fields store them big endian.
export interface ServiceKey {
  vip: number;
  port: number;
  proto: number;
}
export interface ServiceValue {
  service_id: number;
  slot_count: number;
  generation: number;
  flags: number;
}
export interface SlotKey {
  service_id: number;
  generation: number;
  slot: number;
}
export interface SlotValue {
  backend_id: number;
}
export interface BackendKey {
  backend_id: number;
}
export interface BackendValue {
  addr: number;
  port: number;
  proto: number;
  flags: number;
}
export interface IdentityKey {
  cgroup_id: bigint;
}
export interface IdentityValue {
  identity_id: number;
}
export interface PolicyKey {
  service_id: number;
  identity_id: number;
}
export interface PolicyValue {
  action: number;
}
export interface IdNameKey {
  identity_id: number;
}
export interface IdNameValue {
  name: string;
}
export interface MetaKey {
  index: number;
}
export interface MetaValue {
  magic: number;
  layout_version: number;
  applied_revision: bigint;
  applied_at_ms: bigint;
  maps_digest: bigint;
  node: string;
  cluster: string;
}
export interface RevNatSkKey {
  cookie: bigint;
  addr: number;
  port: number;
}
export interface RevNatSkValue {
  vip: number;
  port: number;
  service_id: number;
}
export interface SockKey {
  local_ip: number;
  remote_ip: number;
  local_port: number;
  remote_port: number;
}

export interface ListenerKey {
  addr: number;
  port: number;
}
export interface ListenerValue {
  count: number;
}

export const codecs = {
  serviceKey: codec<ServiceKey>('mesh_service_key'),
  serviceValue: codec<ServiceValue>('mesh_service_value'),
  slotKey: codec<SlotKey>('mesh_slot_key'),
  slotValue: codec<SlotValue>('mesh_slot_value'),
  backendKey: codec<BackendKey>('mesh_backend_key'),
  backendValue: codec<BackendValue>('mesh_backend_value'),
  identityKey: codec<IdentityKey>('mesh_identity_key'),
  identityValue: codec<IdentityValue>('mesh_identity_value'),
  policyKey: codec<PolicyKey>('mesh_policy_key'),
  policyValue: codec<PolicyValue>('mesh_policy_value'),
  idNameKey: codec<IdNameKey>('mesh_id_name_key'),
  idNameValue: codec<IdNameValue>('mesh_id_name_value'),
  metaKey: codec<MetaKey>('mesh_meta_key'),
  metaValue: codec<MetaValue>('mesh_meta_value'),
  revNatSkKey: codec<RevNatSkKey>('mesh_revnat_sk_key'),
  revNatSkValue: codec<RevNatSkValue>('mesh_revnat_sk_value'),
  sockKey: codec<SockKey>('mesh_sock_key'),
  listenerKey: codec<ListenerKey>('mesh_listener_key'),
  listenerValue: codec<ListenerValue>('mesh_listener_value'),
};

/** Dotted quad -> u32 (host arithmetic). Throws on anything but four octets 0-255. */
export function ipv4ToU32(ip: string): number {
  // Dotted quad, 1-3 ASCII digits per part, each <= 255; scanned without split or regex (the
  // incremental compiler parses a few addresses per revision on every agent).
  let n = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c >= 48 && c <= 57 && digits < 3) {
      part = part * 10 + (c - 48);
      digits++;
    } else if (c === 46 && digits > 0 && part <= 255 && dots < 3) {
      n = n * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else throw new RangeError(`not an IPv4 address: ${ip}`);
  }
  if (dots !== 3 || digits === 0 || part > 255) throw new RangeError(`not an IPv4 address: ${ip}`);
  return n * 256 + part;
}

/** An address as a number, or undefined when it is not a dotted IPv4 address. */
export function ipv4OrUndefined(address: string): number | undefined {
  try {
    return ipv4ToU32(address);
  } catch {
    return undefined;
  }
}

export function u32ToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join('.');
}

export function protoNumber(protocol: string): number {
  if (protocol === 'TCP') return 6;
  if (protocol === 'UDP') return 17;
  throw new RangeError(`unknown protocol ${protocol}`);
}

export function protoName(proto: number): string {
  return proto === 6 ? 'TCP' : proto === 17 ? 'UDP' : String(proto);
}

/** Lower-case hex of bytes: how keys and values are shown to people (errors, status, logs). */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function fromHex(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** Bytes -> byte string (one char per byte): the form of keys and values in map sets. */
export function toByteString(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/** Byte string -> bytes; throws on a char above 0xff (it would be cut to its low byte). */
export function fromByteString(s: string): Uint8Array {
  if (NOT_A_BYTE.test(s)) throw new RangeError('not a byte string: a char is above 0xff');
  return new Uint8Array(Buffer.from(s, 'latin1'));
}

/** A byte string as lower-case hex, for display. */
export function byteStringToHex(s: string): string {
  return Buffer.from(s, 'latin1').toString('hex');
}

export function hexToByteString(hex: string): string {
  return Buffer.from(hex, 'hex').toString('latin1');
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
