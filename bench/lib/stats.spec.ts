import { median, percentile, prng, ratioCi95, round, summarize } from './stats';

describe('bench/lib stats', () => {
  it('interpolates between closest ranks (R-7, as numpy)', () => {
    const xs = [15, 20, 35, 40, 50];
    expect(percentile(xs, 0)).toBe(15);
    expect(percentile(xs, 100)).toBe(50);
    expect(percentile(xs, 50)).toBe(35);
    expect(percentile(xs, 40)).toBeCloseTo(29, 10); // rank 1.6: 20 + 0.6 * 15
    expect(percentile([1, 2, 3, 4], 50)).toBe(2.5);
    expect(percentile([1, 2, 3, 4], 90)).toBeCloseTo(3.7, 10);
  });

  it('does not depend on input order and leaves the input alone', () => {
    const xs = [9, 1, 5, 3, 7];
    expect(percentile(xs, 50)).toBe(5);
    expect(median(xs)).toBe(5);
    expect(xs).toEqual([9, 1, 5, 3, 7]);
  });

  it('handles a single sample and rejects empty samples and bad percentiles', () => {
    expect(percentile([42], 99)).toBe(42);
    expect(() => percentile([], 50)).toThrow(RangeError);
    expect(() => percentile([1], -1)).toThrow(RangeError);
    expect(() => percentile([1], 101)).toThrow(RangeError);
    expect(() => percentile([1], Number.NaN)).toThrow(RangeError);
  });

  it('summarizes', () => {
    const s = summarize([4, 1, 3, 2]);
    expect(s).toEqual({ count: 4, min: 1, mean: 2.5, p50: 2.5, p90: 3.7, p99: expect.any(Number), max: 4 });
    expect(s.p99).toBeCloseTo(3.97, 10);
  });

  it('rounds to significant digits', () => {
    expect(round(1234567, 3)).toBe(1230000);
    expect(round(0.000123456, 2)).toBe(0.00012);
    expect(round(0)).toBe(0);
  });

  it('generates a reproducible sequence in [0, 1)', () => {
    const a = prng(7);
    const b = prng(7);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(xs).toEqual(Array.from({ length: 1000 }, () => b()));
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
  });
});

describe('ratioCi95', () => {
  const spread = (n: number, scale: number, seed: number) => {
    const r = prng(seed);
    // A long tail, like latencies: most near `scale`, a few far out.
    return Array.from({ length: n }, () => scale * (1 + (r() < 0.05 ? 5 * r() : r())));
  };

  it('brackets the ratio of the samples and is the same for the same seed', () => {
    const a = spread(500, 20, 1);
    const b = spread(500, 10, 2);
    const ci = ratioCi95(a, b, 99);
    const point = percentile(a, 99) / percentile(b, 99);
    expect(ci.low).toBeLessThanOrEqual(point);
    expect(ci.high).toBeGreaterThanOrEqual(point);
    expect(ci.low).toBeLessThan(ci.high);
    expect(ratioCi95(a, b, 99)).toEqual(ci);
  });

  it('narrows with more samples and is a single point for constant ones', () => {
    const small = ratioCi95(spread(50, 20, 3), spread(50, 10, 4), 50);
    const large = ratioCi95(spread(5000, 20, 3), spread(5000, 10, 4), 50);
    expect(large.high - large.low).toBeLessThan(small.high - small.low);
    expect(ratioCi95([4, 4, 4], [2, 2], 99)).toEqual({ low: 2, high: 2 });
    expect(() => ratioCi95([], [1], 99)).toThrow(RangeError);
  });
});
