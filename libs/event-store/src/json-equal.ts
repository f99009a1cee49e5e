/**
 * Structural equality of JSON values with exactly the meaning of the domain's
 * `canonicalEqual` (key order ignored, undefined members absent, undefined
 * array items null), without encoding either side: no-op detection runs for
 * every put of every append, and stops here at the first difference.
 */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || a === undefined || b === undefined) return isNullish(a) && isNullish(b);
  const ta = typeof a;
  if (ta !== 'object' || typeof b !== 'object') return false;
  if (a instanceof Date || b instanceof Date)
    return a instanceof Date && b instanceof Date && a.toISOString() === b.toISOString();
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let defined = 0;
  for (const k in x) {
    if (!Object.hasOwn(x, k) || x[k] === undefined) continue;
    defined++;
    // An undefined member is absent, even where the other side holds null.
    const v = Object.hasOwn(y, k) ? y[k] : undefined;
    if (v === undefined || !jsonEqual(x[k], v)) return false;
  }
  for (const k in y) if (Object.hasOwn(y, k) && y[k] !== undefined) defined--;
  return defined === 0;
}

/** Inside arrays, canonical JSON writes undefined as null; as members both are compared above. */
function isNullish(v: unknown): boolean {
  return v === null || v === undefined;
}
