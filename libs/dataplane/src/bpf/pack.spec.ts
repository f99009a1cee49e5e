import { MapError } from '../backend';
import { codecs, toByteString } from '../codec';
import { BatchBuffers } from './pack';

const slots = (n: number, seed: number) =>
  Array.from({ length: n }, (_, i) => [
    codecs.slotKey.encode({ service_id: 1000 + i, generation: seed, slot: i % 7 }),
    codecs.slotValue.encode({ backend_id: seed * 100_000 + i + 1 }),
  ]) as [Uint8Array, Uint8Array][];

const concat = (parts: Uint8Array[]) => Buffer.concat(parts.map((p) => Buffer.from(p)));

describe('BatchBuffers', () => {
  it('packs entries back to back, exactly n long, also when a smaller batch reuses the buffers', () => {
    const b = new BatchBuffers('mesh_slots', 8, 4);
    for (const [n, seed] of [
      [1000, 1],
      [3, 2],
      [1, 3],
      [1200, 4],
    ] as const) {
      const es = slots(n, seed);
      const [keys, values] = b.packEntries(es);
      expect(keys.equals(concat(es.map(([k]) => k)))).toBe(true);
      expect(values.equals(concat(es.map(([, v]) => v)))).toBe(true);
      expect(b.packKeys(es.map(([k]) => k)).equals(keys)).toBe(true);
    }
  });

  it('packs large values (mesh_id_names, 64 bytes) as exactly as small ones', () => {
    const b = new BatchBuffers('mesh_id_names', 4, 64);
    const es = Array.from({ length: 9 }, (_, i) => [
      codecs.idNameKey.encode({ identity_id: i + 1 }),
      codecs.idNameValue.encode({ name: `default/identity-${i}`.repeat(i % 3) }),
    ]) as [Uint8Array, Uint8Array][];
    const [keys, values] = b.packEntries(es);
    expect(keys.equals(concat(es.map(([k]) => k)))).toBe(true);
    expect(values.equals(concat(es.map(([, v]) => v)))).toBe(true);
  });

  it('writes byte-string batches as the same bytes as the entries they encode', () => {
    const b = new BatchBuffers('mesh_slots', 8, 4);
    for (const [n, seed] of [
      [500, 5],
      [2, 6],
      [1000, 7],
    ] as const) {
      const es = slots(n, seed);
      const [sk, sv] = b.packStrings(
        es.map(([k]) => toByteString(k)),
        es.map(([, v]) => toByteString(v)),
      );
      const fromStrings = [Buffer.from(sk), Buffer.from(sv)];
      const [keys, values] = b.packEntries(es);
      expect(fromStrings[0]!.equals(keys)).toBe(true);
      expect(fromStrings[1]!.equals(values)).toBe(true);
      expect(b.packStringKeys(es.map(([k]) => toByteString(k))).equals(keys)).toBe(true);
    }
    // Bytes 0x80-0xff stay one byte each (latin1, not UTF-8).
    const high = new BatchBuffers('mesh_id_names', 4, 64);
    const [, v] = high.packStrings(['\xff\x80\x00\x01'], [`${'\xe9'.repeat(63)}\0`]);
    expect([...v.subarray(0, 3)]).toEqual([0xe9, 0xe9, 0xe9]);
    expect(v).toHaveLength(64);
  });

  it('rejects a wrong-sized entry with its index and the map name', () => {
    const b = new BatchBuffers('mesh_slots', 8, 4);
    const es = slots(5, 1);
    es[3] = [es[3]![0], new Uint8Array(5)];
    expect(() => b.packEntries(es)).toThrow(
      expect.objectContaining({
        name: 'MapError',
        code: 'EINVAL',
        map: 'mesh_slots',
        op: 'update',
        done: 3,
        message: expect.stringContaining('entry 3: value of 5 bytes, expected 4'),
      }),
    );
    expect(() => b.packKeys([new Uint8Array(8), new Uint8Array(7)])).toThrow(
      expect.objectContaining({ op: 'delete', done: 1 }),
    );
  });

  it('rejects byte strings of the wrong length or with a char above 0xff, naming the entry', () => {
    const b = new BatchBuffers('mesh_slots', 8, 4);
    const keys = slots(4, 1).map(([k]) => toByteString(k));
    const values = slots(4, 1).map(([, v]) => toByteString(v));
    // A short and a long key that add up to the right total length.
    const odd = [...keys];
    odd[1] = odd[1]!.slice(1);
    odd[2] = `${odd[2]}\0`;
    expect(() => b.packStrings(odd, values)).toThrow(
      expect.objectContaining({
        done: 1,
        message: expect.stringContaining('entry 1: key of 7 bytes, expected 8'),
      }),
    );
    const wide = [...values];
    wide[2] = '\u0100\0\0\0';
    expect(() => b.packStrings(keys, wide)).toThrow(
      expect.objectContaining({
        code: 'EINVAL',
        done: 2,
        message: expect.stringContaining('entry 2: value is not a byte string'),
      }),
    );
    const wideKey = [...keys];
    wideKey[3] = `\u2603${wideKey[3]!.slice(1)}`;
    expect(() => b.packStringKeys(wideKey)).toThrow(expect.objectContaining({ op: 'delete', done: 3 }));
    expect(() => b.packStrings(keys, values.slice(1))).toThrow(MapError);
  });
});
