import fc from 'fast-check';
import { ByteTable } from './byte-table';

const key = (n: number) => String.fromCharCode(n & 0xff, (n >> 8) & 0xff, 0, 7);
const sorted = (t: Iterable<readonly [string, string]>) => [...t].sort(([a], [b]) => (a < b ? -1 : 1));

describe('ByteTable', () => {
  it('behaves as a Map over any sequence of sets and deletes (growth, shrinking, shifted runs)', () => {
    // Few distinct keys in a table that grows and shrinks: long probe runs, deletes in their middle.
    const opArb = fc.tuple(fc.boolean(), fc.nat(300), fc.nat(0xffff));
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 600 }), (ops) => {
        const t = new ByteTable(4, 2);
        const m = new Map<string, string>();
        for (const [put, k, v] of ops) {
          const value = String.fromCharCode(v & 0xff, v >> 8);
          if (put) {
            // Half the writes through exchange: it answers what the Map held before.
            if (v % 2) t.set(key(k), value);
            else expect(t.exchange(key(k), value)).toBe(m.get(key(k)));
            m.set(key(k), value);
          } else expect(t.delete(key(k))).toBe(m.delete(key(k)));
          expect(t.size).toBe(m.size);
        }
        for (let k = 0; k <= 300; k++) {
          expect(t.get(key(k))).toBe(m.get(key(k)));
          expect(t.has(key(k))).toBe(m.has(key(k)));
        }
        expect(sorted(t)).toEqual(sorted(m));
      }),
      { numRuns: 200 },
    );
  });

  it('holds bytes 0-255 of exactly its sizes, and says so when they are not', () => {
    const t = new ByteTable(2, 3);
    t.set('\0\xff', '\xff\0\x80');
    expect(t.get('\0\xff')).toBe('\xff\0\x80');
    // exchange: the value itself when unchanged, the previous one, undefined for a new key.
    const same = '\xff\0\x80';
    expect(t.exchange('\0\xff', same)).toBe(same);
    expect(t.exchange('\0\xff', '\xff\0\x81')).toBe('\xff\0\x80');
    expect(t.exchange('\0\xfe', 'abc')).toBeUndefined();
    expect(t.get('\0\xff')).toBe('\xff\0\x81');
    // trySet: a new key only when allowed; an existing one always.
    expect(t.trySet('\0\xfd', 'abc', false)).toBe(false);
    expect(t.has('\0\xfd')).toBe(false);
    expect(t.trySet('\0\xfe', 'xyz', false)).toBe(true);
    expect(t.get('\0\xfe')).toBe('xyz');
    t.delete('\0\xfe');
    t.set('\0\xff', '\xff\0\x80');
    expect(() => t.set('\0', 'abc')).toThrow('key of 1 bytes, expected 2');
    expect(() => t.set('ab', 'abcd')).toThrow('value of 4 bytes, expected 3');
    expect(() => t.set('a\u0100', 'abc')).toThrow('key: char 1 is not a byte');
    // A key of another size is simply not there.
    expect(t.get('abc')).toBeUndefined();
    expect(t.delete('abc')).toBe(false);
    expect(t.size).toBe(1);
  });

  it('reads long values whole, and keys, values and entries agree', () => {
    const t = new ByteTable(4, 64);
    const name = `${'n'.repeat(10)}\0${'\0'.repeat(53)}`;
    t.set(key(1), name);
    t.set(key(2), 'x'.repeat(64));
    expect(t.get(key(1))).toBe(name);
    expect(sorted(t.entries())).toEqual([
      [key(1), name],
      [key(2), 'x'.repeat(64)],
    ]);
    expect([...t.keys()].sort()).toEqual([key(1), key(2)]);
    expect([...t.values()].sort()).toEqual([name, 'x'.repeat(64)]);
    const seen: string[] = [];
    t.forEach((v, k) => {
      seen.push(k + v);
    });
    expect(seen.sort()).toEqual([key(1) + name, key(2) + 'x'.repeat(64)]);
  });

  it('iterates a snapshot: deleting every key inside the loop visits each once', () => {
    const t = new ByteTable(4, 0);
    for (let k = 0; k < 100; k++) t.set(key(k), '');
    let visited = 0;
    for (const k of t.keys()) {
      t.delete(k);
      visited++;
    }
    expect(visited).toBe(100);
    expect(t.size).toBe(0);
    t.set(key(5), '');
    t.clear();
    expect([...t]).toEqual([]);
    expect(t.has(key(5))).toBe(false);
  });

  it('keeps its entries outside the JS heap, and gives memory back when it empties', () => {
    const t = new ByteTable(8, 4);
    for (let k = 0; k < 10_000; k++) t.set(`${key(k)}\0\0\0\0`, 'abcd');
    const full = t.byteLength;
    expect(full).toBeGreaterThanOrEqual(10_000 * 16);
    // Between 0.3 and 0.6 full: at most 4 slots of 16 bytes per entry (a Map entry and its two strings: ~100 on the heap).
    expect(full).toBeLessThanOrEqual(10_000 * 16 * 4);
    for (let k = 0; k < 10_000; k++) t.delete(`${key(k)}\0\0\0\0`);
    expect(t.byteLength).toBeLessThan(full / 8);
  });
});
