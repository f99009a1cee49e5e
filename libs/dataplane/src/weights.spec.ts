import fc from 'fast-check';
import { slotCounts, type Weight } from './weights';

const w = (num: number, den = 1): Weight => ({ num: BigInt(num), den: BigInt(den) });

describe('slotCounts', () => {
  it('equal weights: one slot each', () => {
    expect(slotCounts([w(1), w(1), w(1)], 1024)).toEqual([1, 1, 1]);
    expect(slotCounts([w(5), w(5)], 1024)).toEqual([1, 1]);
  });

  it('exact rational weights when they fit: 90/10 over 2+1 workloads -> 9,9,2', () => {
    expect(slotCounts([w(90, 2), w(90, 2), w(10, 1)], 1024)).toEqual([9, 9, 2]);
    expect(slotCounts([w(1), w(2), w(3)], 1024)).toEqual([1, 2, 3]);
  });

  it('zero weights get no slots; all zero gives all zeros', () => {
    expect(slotCounts([w(0), w(3)], 100)).toEqual([0, 1]);
    expect(slotCounts([w(0), w(0)], 100)).toEqual([0, 0]);
  });

  it('scales with largest remainder when the exact table is too big, ties to the earlier backend', () => {
    // 3333 : 3333 : 3334 scaled to 10 -> 3.333, 3.333, 3.334: the biggest remainder wins the 10th slot.
    expect(slotCounts([w(3333), w(3333), w(3334)], 10)).toEqual([3, 3, 4]);
    expect(slotCounts([w(1001), w(1001), w(1001)], 10)).toEqual([1, 1, 1]);
    expect(slotCounts([w(5001), w(4999)], 3)).toEqual([2, 1]);
  });

  it('a positive weight always gets at least one slot', () => {
    expect(slotCounts([w(1), w(9999)], 100)).toEqual([1, 100]);
  });

  it('property: deterministic, proportional within 1 slot, bounded size', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 10_000 }), { minLength: 1, maxLength: 16 }),
        fc.integer({ min: 1, max: 2048 }),
        (ws, max) => {
          const weights = ws.map((n) => w(n));
          const counts = slotCounts(weights, max);
          expect(slotCounts(weights, max)).toEqual(counts);
          const total = counts.reduce((a, b) => a + b, 0);
          const sum = ws.reduce((a, b) => a + b, 0);
          if (sum === 0) return expect(total).toBe(0);
          expect(total).toBeLessThanOrEqual(max + ws.length);
          ws.forEach((n, i) => {
            expect(counts[i]! > 0).toBe(n > 0);
            // Before the gcd reduction the error is < 1 slot of `max`; compare shares.
            expect(Math.abs(counts[i]! / total - n / sum)).toBeLessThanOrEqual(
              (ws.length + 1) / Math.min(total, max) + 1e-9,
            );
          });
        },
      ),
    );
  });

  it('property: whole weights (the Number fast path) count as the same rationals over 2 do', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 2 ** 31 + 5 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 0, max: 12 }), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 1, max: 64 }),
        (big, small, max) => {
          for (const ws of [big, small]) {
            // den 2 never takes the fast path: the exact BigInt path is the reference.
            expect(
              slotCounts(
                ws.map((n) => w(n)),
                max,
              ),
            ).toEqual(
              slotCounts(
                ws.map((n) => w(2 * n, 2)),
                max,
              ),
            );
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
