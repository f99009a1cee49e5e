/** Percentiles and summaries of latency samples. Pure: no I/O, no clock. */

/**
 * The p-th percentile (0..100) of `samples`, by linear interpolation between
 * the closest ranks (the "R-7" definition used by numpy and most spreadsheets):
 * rank = (n - 1) * p / 100. The input is not modified.
 */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) throw new RangeError('percentile of an empty sample');
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be within 0..100, got ${p}`);
  const sorted = [...samples].sort((a, b) => a - b);
  return percentileOfSorted(sorted, p);
}

/** As `percentile`, for an already ascending array (no copy, no sort). */
export function percentileOfSorted(sorted: readonly number[], p: number): number {
  const n = sorted.length;
  if (n === 0) throw new RangeError('percentile of an empty sample');
  const rank = ((n - 1) * p) / 100;
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return a + (b - a) * (rank - lo);
}

export function median(samples: readonly number[]): number {
  return percentile(samples, 50);
}

export interface Summary {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new RangeError('summary of an empty sample');
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((s, x) => s + x, 0);
  return {
    count: sorted.length,
    min: sorted[0]!,
    mean: sum / sorted.length,
    p50: percentileOfSorted(sorted, 50),
    p90: percentileOfSorted(sorted, 90),
    p99: percentileOfSorted(sorted, 99),
    max: sorted[sorted.length - 1]!,
  };
}

/** Rounds to `digits` significant digits: readable JSON without losing the magnitude. */
export function round(x: number, digits = 4): number {
  if (!Number.isFinite(x) || x === 0) return x;
  return Number(x.toPrecision(digits));
}

/** Every number in a summary rounded to `digits` significant digits. */
export function roundSummary(s: Summary, digits = 4): Summary {
  return {
    count: s.count,
    min: round(s.min, digits),
    mean: round(s.mean, digits),
    p50: round(s.p50, digits),
    p90: round(s.p90, digits),
    p99: round(s.p99, digits),
    max: round(s.max, digits),
  };
}

/** A small deterministic PRNG (mulberry32), so a benchmark's workload is reproducible from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A 95% bootstrap interval of percentile(a, p) / percentile(b, p): both samples resampled with
 * replacement `rounds` times (seeded, so a result file can be recomputed). A ratio of two tail
 * percentiles moves a lot between runs; the interval says how much this run's samples allow.
 */
export function ratioCi95(
  a: readonly number[],
  b: readonly number[],
  p: number,
  opts: { rounds?: number; seed?: number } = {},
): { low: number; high: number } {
  if (a.length === 0 || b.length === 0) throw new RangeError('ratioCi95 of an empty sample');
  const rounds = opts.rounds ?? 2000;
  const rand = prng(opts.seed ?? 1);
  const resample = (xs: readonly number[], into: Float64Array) => {
    for (let i = 0; i < xs.length; i++) into[i] = xs[Math.floor(rand() * xs.length)]!;
    into.sort();
    return percentileOfSorted(into as unknown as number[], p);
  };
  const ra = new Float64Array(a.length);
  const rb = new Float64Array(b.length);
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) ratios.push(resample(a, ra) / resample(b, rb));
  ratios.sort((x, y) => x - y);
  return { low: percentileOfSorted(ratios, 2.5), high: percentileOfSorted(ratios, 97.5) };
}
