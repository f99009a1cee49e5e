/*
 * A compact multimap value (the incremental compiler keeps tens of thousands
 * of them per agent): almost every bucket holds one element, which a Set
 * would wrap in ~130 bytes. So one element is stored as itself, a few as an
 * exact array, and only a large bucket becomes a Set (O(1) removal).
 * Elements are never arrays or Sets themselves (that is what tells the forms apart).
 */

export type Bag<V> = V | V[] | Set<V>;

/** Above this many elements an array bucket becomes a Set. */
export const BAG_ARRAY_MAX = 8;

function isArray<V>(b: Bag<V>): b is V[] {
  return Array.isArray(b);
}

/** Adds `v` to the bucket `k` (no duplicates, like a Set). */
export function bagAdd<K, V>(m: Map<K, Bag<V>>, k: K, v: V): void {
  const b = m.get(k);
  if (b === undefined) m.set(k, v);
  else if (b instanceof Set) b.add(v);
  else if (isArray(b)) {
    if (b.includes(v)) return;
    if (b.length < BAG_ARRAY_MAX) m.set(k, exactArray(b.length + 1, b, v));
    else m.set(k, new Set([...b, v]));
  } else if (b !== v) m.set(k, exactArray(2, [b], v));
}

/** Removes `v` from the bucket `k`; an empty bucket leaves the map. */
export function bagRemove<K, V>(m: Map<K, Bag<V>>, k: K, v: V): void {
  const b = m.get(k);
  if (b === undefined) return;
  if (b instanceof Set) {
    b.delete(v);
    if (b.size === 0) m.delete(k);
    else if (b.size === 1) m.set(k, b.values().next().value!);
    else if (b.size <= BAG_ARRAY_MAX / 2) m.set(k, exactArray(b.size, b));
  } else if (isArray(b)) {
    const i = b.indexOf(v);
    if (i < 0) return;
    if (b.length === 2) m.set(k, b[1 - i]!);
    else m.set(k, exactArray(b.length - 1, b.slice(0, i), ...b.slice(i + 1)));
  } else if (b === v) m.delete(k);
}

export function bagSize<V>(b: Bag<V> | undefined): number {
  if (b === undefined) return 0;
  if (b instanceof Set) return b.size;
  return isArray(b) ? b.length : 1;
}

/** The elements of a bucket (none for a missing one). */
export function bagValues<V>(b: Bag<V> | undefined): Iterable<V> {
  if (b === undefined) return [];
  if (b instanceof Set || isArray(b)) return b;
  return [b];
}

/**
 * `n` elements in an array allocated at exactly that size: arrays grown by
 * push or built with spreads keep spare slots (a 3-element bucket takes ~200
 * bytes instead of ~70).
 */
function exactArray<V>(n: number, from: Iterable<V>, ...more: V[]): V[] {
  const out = new Array<V>(n);
  let i = 0;
  for (const x of from) out[i++] = x;
  for (const x of more) out[i++] = x;
  return out;
}
