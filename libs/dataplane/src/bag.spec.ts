import fc from 'fast-check';
import { BAG_ARRAY_MAX, type Bag, bagAdd, bagRemove, bagSize, bagValues } from './bag';

describe('Bag', () => {
  it('keeps one element as itself, a few in an array, many in a Set, and shrinks back', () => {
    const m = new Map<string, Bag<string>>();
    bagAdd(m, 'k', 'a');
    expect(m.get('k')).toBe('a');
    bagAdd(m, 'k', 'a');
    expect(m.get('k')).toBe('a');
    bagAdd(m, 'k', 'b');
    expect(m.get('k')).toEqual(['a', 'b']);
    for (let i = 0; i < BAG_ARRAY_MAX; i++) bagAdd(m, 'k', `x${i}`);
    expect(m.get('k')).toBeInstanceOf(Set);
    expect(bagSize(m.get('k'))).toBe(BAG_ARRAY_MAX + 2);
    for (let i = 0; i < BAG_ARRAY_MAX; i++) bagRemove(m, 'k', `x${i}`);
    expect(m.get('k')).toEqual(['a', 'b']);
    bagRemove(m, 'k', 'a');
    expect(m.get('k')).toBe('b');
    bagRemove(m, 'k', 'zzz');
    expect(m.get('k')).toBe('b');
    bagRemove(m, 'k', 'b');
    expect(m.has('k')).toBe(false);
    expect([...bagValues(m.get('k'))]).toEqual([]);
  });

  it('holds objects by identity', () => {
    const m = new Map<number, Bag<{ n: number }>>();
    const [a, b] = [{ n: 1 }, { n: 1 }];
    bagAdd(m, 1, a);
    bagAdd(m, 1, b);
    expect(bagSize(m.get(1))).toBe(2);
    bagRemove(m, 1, { n: 1 });
    expect(bagSize(m.get(1))).toBe(2);
    bagRemove(m, 1, a);
    expect(m.get(1)).toBe(b);
  });

  it('property: behaves as a Map of Sets under any sequence of adds and removes', () => {
    const op = fc.tuple(fc.boolean(), fc.nat(2), fc.nat(20));
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const bags = new Map<number, Bag<string>>();
        const model = new Map<number, Set<string>>();
        for (const [add, k, v] of ops) {
          const value = `v${v}`;
          if (add) {
            bagAdd(bags, k, value);
            model.set(k, (model.get(k) ?? new Set()).add(value));
          } else {
            bagRemove(bags, k, value);
            model.get(k)?.delete(value);
            if (model.get(k)?.size === 0) model.delete(k);
          }
          expect([...bags.keys()].sort()).toEqual([...model.keys()].sort());
          for (const [key, set] of model) {
            expect(new Set(bagValues(bags.get(key)))).toEqual(set);
            expect(bagSize(bags.get(key))).toBe(set.size);
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});
