import fc from 'fast-check';
import {
  byteStringToHex,
  type Codec,
  codecs,
  fromByteString,
  fromHex,
  hexToByteString,
  ipv4OrUndefined,
  ipv4ToU32,
  toByteString,
  toHex,
  u32ToIpv4,
} from './codec';
import { STRUCTS } from './layout';

const hex = (b: Uint8Array) => toHex(b);

describe('codecs are byte-exact with bpf/mesh_maps.h', () => {
  it('service key: VIP and port in network order, proto, zero pad', () => {
    const key = codecs.serviceKey.encode({ vip: ipv4ToU32('127.100.0.1'), port: 80, proto: 6 });
    expect(hex(key)).toBe('7f640001' + '0050' + '06' + '00');
  });

  it('service value: host-order (little endian) fields', () => {
    const v = codecs.serviceValue.encode({
      service_id: 0x01020304,
      slot_count: 3,
      generation: 0xbeef,
      flags: 1,
    });
    expect(hex(v)).toBe('04030201' + '0300' + 'efbe' + '0100' + '0000');
  });

  it('backend value: address and port big endian, proto and flags bytes', () => {
    const v = codecs.backendValue.encode({ addr: ipv4ToU32('127.0.1.7'), port: 8080, proto: 17, flags: 1 });
    expect(hex(v)).toBe('7f000107' + '1f90' + '11' + '01');
  });

  it('slot key, identity key (u64 cgroup id), policy and meta', () => {
    expect(hex(codecs.slotKey.encode({ service_id: 1, generation: 2, slot: 3 }))).toBe(
      '01000000' + '0200' + '0300',
    );
    expect(hex(codecs.identityKey.encode({ cgroup_id: 0x1122334455667788n }))).toBe('8877665544332211');
    expect(hex(codecs.policyValue.encode({ action: 2 }))).toBe('02000000');
    const meta = codecs.metaValue.encode({
      magic: 0x4d455348,
      layout_version: 1,
      applied_revision: 42n,
      applied_at_ms: 0n,
      maps_digest: 0n,
      node: 'n1',
      cluster: 'c',
    });
    expect(meta.length).toBe(STRUCTS.mesh_meta_value.size);
    expect(hex(meta.subarray(0, 16))).toBe('4853454d' + '01000000' + '2a00000000000000');
    expect(hex(meta.subarray(32, 35))).toBe('6e3100');
    expect(meta[96]).toBe('c'.charCodeAt(0));
  });

  it('byte-string encoders agree with byte encoders on names, u64 and meta', () => {
    for (const name of ['', 'a', 'frontend', 'x'.repeat(63), 'é']) {
      const s = codecs.idNameValue.encodeStr({ name });
      expect(s).toBe(toByteString(codecs.idNameValue.encode({ name })));
      expect(s).toHaveLength(64);
      expect(codecs.idNameValue.decodeStr(s)).toEqual({ name });
    }
    const meta = {
      magic: 1,
      layout_version: 2,
      applied_revision: 2n ** 53n + 1n,
      applied_at_ms: 1n,
      maps_digest: 2n ** 64n - 1n,
      node: 'n',
      cluster: 'c',
    };
    expect(codecs.metaValue.encodeStr(meta)).toBe(toByteString(codecs.metaValue.encode(meta)));
    expect(codecs.metaValue.decodeStr(codecs.metaValue.encodeStr(meta))).toEqual(meta);
    expect(() => codecs.serviceKey.encodeStr({ vip: 1, port: 70000, proto: 6 })).toThrow(/port/);
    expect(() => codecs.metaValue.encodeStr({ ...meta, node: 'n'.repeat(64) })).toThrow(/longer than/);
    expect(() => codecs.metaValue.encodeStr({ ...meta, magic: undefined as unknown as number })).toThrow(
      /magic is missing/,
    );
    expect(() => codecs.serviceKey.decodeStr('\0')).toThrow(/expected 8 bytes/);
    expect(() => codecs.serviceKey.decodeStr('\0\0\0\0\u0100\0\0\0')).toThrow(/not a byte string/);
  });

  it('byte strings: one char per byte, hex for display, chars above 0xff refused', () => {
    const bytes = Uint8Array.from([0, 1, 0x7f, 0x80, 0xfe, 0xff]);
    const s = toByteString(bytes);
    expect(s).toBe('\x00\x01\x7f\x80\xfe\xff');
    expect(fromByteString(s)).toEqual(bytes);
    expect(byteStringToHex(s)).toBe('00017f80feff');
    expect(hexToByteString('00017f80feff')).toBe(s);
    expect(() => fromByteString('\u0101')).toThrow(/not a byte string/);
    // Map keys: distinct bytes are distinct strings, equal bytes equal ones.
    const k1 = codecs.slotKey.encodeStr({ service_id: 1, generation: 2, slot: 3 });
    const k2 = codecs.slotKey.encodeStr({ service_id: 1, generation: 2, slot: 3 });
    expect(k1 === k2).toBe(true);
    expect(k1).not.toBe(codecs.slotKey.encodeStr({ service_id: 1, generation: 2, slot: 4 }));
    expect(byteStringToHex(k1)).toBe('01000000' + '0200' + '0300');
  });

  it('names are NUL padded and must leave room for the terminator', () => {
    const v = codecs.idNameValue.encode({ name: 'frontend' });
    expect(v.length).toBe(64);
    expect(codecs.idNameValue.decode(v)).toEqual({ name: 'frontend' });
    expect(() => codecs.idNameValue.encode({ name: 'x'.repeat(64) })).toThrow(/longer than 63/);
  });

  it('rejects out-of-range values and wrong sizes instead of truncating', () => {
    expect(() => codecs.serviceKey.encode({ vip: 1, port: 70000, proto: 6 })).toThrow(/port/);
    expect(() =>
      codecs.serviceValue.encode({ service_id: -1, slot_count: 0, generation: 0, flags: 0 }),
    ).toThrow();
    expect(() => codecs.slotValue.encode({ backend_id: 1.5 })).toThrow();
    expect(() => codecs.serviceKey.decode(new Uint8Array(7))).toThrow(/expected 8 bytes/);
  });

  it('round-trips every struct (property)', () => {
    const u = (bits: number) => fc.integer({ min: 0, max: 2 ** bits - 1 });
    fc.assert(
      fc.property(
        u(32),
        u(16),
        u(8),
        u(16),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        (a, b, c, d, big) => {
          const cases: Array<[keyof typeof codecs, Record<string, unknown>]> = [
            ['serviceKey', { vip: a, port: b, proto: c }],
            ['serviceValue', { service_id: a, slot_count: b, generation: d, flags: c }],
            ['slotKey', { service_id: a, generation: b, slot: d }],
            ['backendValue', { addr: a, port: b, proto: c, flags: c }],
            ['identityKey', { cgroup_id: big }],
            ['policyKey', { service_id: a, identity_id: (a ^ 1) >>> 0 }],
            ['revNatSkKey', { cookie: big, addr: a, port: b }],
            ['revNatSkValue', { vip: a, port: b, service_id: a }],
            ['sockKey', { local_ip: a, remote_ip: a, local_port: b, remote_port: d }],
          ];
          for (const [name, value] of cases) {
            const c = codecs[name] as unknown as Codec<unknown>;
            const bytes = c.encode(value);
            expect(c.decode(bytes)).toEqual(value);
            // The byte-string path (what map sets hold) is the same bytes.
            expect(c.encodeStr(value)).toBe(toByteString(bytes));
            expect(c.decodeStr(toByteString(bytes))).toEqual(value);
            expect(c.decode(fromByteString(c.encodeStr(value)))).toEqual(value);
            expect(c.decode(fromHex(byteStringToHex(c.encodeStr(value))))).toEqual(value);
          }
        },
      ),
    );
  });

  it('ipv4 helpers', () => {
    expect(ipv4ToU32('127.100.0.1')).toBe(0x7f640001);
    expect(u32ToIpv4(0x7f000105)).toBe('127.0.1.5');
    expect(() => ipv4ToU32('127.0.1')).toThrow();
    expect(() => ipv4ToU32('127.0.1.256')).toThrow();
  });

  it('ipv4ToU32 accepts exactly four dotted parts of 1-3 digits, each <= 255', () => {
    const ok: Array<[string, number]> = [
      ['0.0.0.0', 0],
      ['255.255.255.255', 0xffffffff],
      ['010.1.1.1', 0x0a010101], // leading zeros: decimal, as before
      ['1.2.3.4', 0x01020304],
    ];
    for (const [ip, n] of ok) expect(ipv4ToU32(ip)).toBe(n);
    const bad = ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.256', '1..2.3', '.1.2.3', '1.2.3.', 'a.b.c.d'];
    bad.push('1.2.3.4 ', ' 1.2.3.4', '1.2.3.0004', '1.2.3.-1', '1e2.1.1.1', '1.2.3.4\n', '１.2.3.4');
    for (const ip of bad) expect(() => ipv4ToU32(ip)).toThrow(`not an IPv4 address: ${ip}`);
  });
});

describe('ipv4OrUndefined', () => {
  it.each([
    ['127.0.1.7', 0x7f000107],
    ['127.100.0.1', 0x7f640001],
    ['127.0.1', undefined],
    ['127.0.1.256', undefined],
    ['not-an-ip', undefined],
  ])('%s -> %s', (address, want) => {
    expect(ipv4OrUndefined(address)).toBe(want);
  });
});
