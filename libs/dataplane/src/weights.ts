/*
 * Weights -> slot counts. The BPF program picks a slot uniformly, so a
 * backend's share of traffic is its share of slots. Exact weights are used
 * when they fit (90/10 over 2+1 workloads becomes 9,9,2 slots); otherwise the
 * table is scaled to `maxSlots` by the largest-remainder method, ties broken by
 * position (inputs come sorted), so the result is deterministic.
 *
 * Weights are rationals num/den (a Route subset's weight split over its
 * workloads by workload weight); BigInt keeps the common-denominator step exact.
 */

export interface Weight {
  num: bigint;
  den: bigint;
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a < 0n ? -a : a;
}

function lcm(a: bigint, b: bigint): bigint {
  return (a / gcd(a, b)) * b;
}

/**
 * Slot counts for `weights`, in the same order. Every positive weight gets at
 * least one slot (an operator who gives a canary weight 1 expects it to see
 * traffic), so the total may exceed `maxSlots` by at most the number of
 * backends. Zero weights get zero slots. All-zero input gives all zeros.
 */
export function slotCounts(weights: readonly Weight[], maxSlots: number): number[] {
  if (!Number.isInteger(maxSlots) || maxSlots < 1)
    throw new RangeError(`maxSlots must be >= 1, got ${maxSlots}`);
  const small = smallIntegerCounts(weights, maxSlots);
  if (small) return small;
  let den = 1n;
  for (const w of weights) {
    if (w.num < 0n || w.den <= 0n) throw new RangeError('weights must be >= 0 with a positive denominator');
    if (w.num > 0n) den = lcm(den, w.den);
  }
  const ints = weights.map((w) => (w.num > 0n ? (w.num * den) / w.den : 0n));
  let g = 0n;
  for (const n of ints) g = gcd(g, n);
  if (g === 0n) return weights.map(() => 0);
  const reduced = ints.map((n) => n / g);
  const total = reduced.reduce((a, b) => a + b, 0n);
  if (total <= BigInt(maxSlots)) return reduced.map(Number);

  // Largest remainder: floor quotas, then hand the leftover slots to the largest remainders.
  const m = BigInt(maxSlots);
  const counts = reduced.map((n) => (n * m) / total);
  const order = reduced
    .map((n, i) => ({ i, rem: (n * m) % total }))
    .sort((a, b) => (a.rem === b.rem ? a.i - b.i : a.rem > b.rem ? -1 : 1));
  let left = m - counts.reduce((a, b) => a + b, 0n);
  for (const { i } of order) {
    if (left <= 0n) break;
    counts[i]! += 1n;
    left -= 1n;
  }
  const out = counts.map((c, i) => (c === 0n && reduced[i]! > 0n ? 1 : Number(c)));
  // Scaling can leave a common factor (e.g. 512/512): the smallest table is the cheapest to write.
  const h = out.reduce((a, b) => Number(gcd(BigInt(a), BigInt(b))), 0);
  return h > 1 ? out.map((c) => c / h) : out;
}

const SMALL = 2n ** 31n;

function gcdInt(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/**
 * The common case without BigInt: whole weights (no Route split) whose reduced total fits the
 * table, so they are the counts (what the exact path returns for them). Undefined otherwise.
 */
function smallIntegerCounts(weights: readonly Weight[], maxSlots: number): number[] | undefined {
  const out: number[] = [];
  let g = 0;
  for (const w of weights) {
    if (w.den !== 1n || w.num < 0n || w.num >= SMALL) return undefined;
    const n = Number(w.num);
    out.push(n);
    g = gcdInt(g, n);
  }
  if (g === 0) return undefined; // all zero: the general path answers it
  let total = 0;
  for (let i = 0; i < out.length; i++) {
    out[i] = out[i]! / g;
    total += out[i]!;
  }
  return total <= maxSlots ? out : undefined;
}
