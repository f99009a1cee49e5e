import { canonicalEqual } from '@meshplane/domain';
import fc from 'fast-check';
import { jsonEqual } from './json-equal';

const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: -3, max: 3 }),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.constantFrom('', 'a', 'b', '"q"'),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd'), fc.option(tie('value'), { nil: undefined }), {
      maxKeys: 4,
    }),
  ),
})).value;

/** The same value with its object keys in another order (what jsonb hands back). */
function reordered(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reordered);
  if (v && typeof v === 'object')
    return Object.fromEntries(
      Object.entries(v)
        .reverse()
        .map(([k, x]) => [k, reordered(x)]),
    );
  return v;
}

describe('jsonEqual', () => {
  it('agrees with canonicalEqual on random pairs', () => {
    fc.assert(
      fc.property(json, json, (a, b) => {
        expect(jsonEqual(a, b)).toBe(canonicalEqual(a, b));
      }),
      { numRuns: 2000 },
    );
  });

  it('agrees with canonicalEqual on reordered and slightly changed copies', () => {
    fc.assert(
      fc.property(json, fc.boolean(), (a, change) => {
        const b = reordered(a) as Record<string, unknown>;
        const c = change && b && typeof b === 'object' && !Array.isArray(b) ? { ...b, d: 1 } : b;
        expect(jsonEqual(a, c)).toBe(canonicalEqual(a, c));
      }),
      { numRuns: 2000 },
    );
  });

  it('treats undefined members as absent and undefined array items as null', () => {
    expect(jsonEqual({ a: 1, b: undefined }, { a: 1 })).toBe(true);
    expect(jsonEqual([undefined], [null])).toBe(true);
    expect(jsonEqual({ a: null }, {})).toBe(false);
    // Found by the property above (seed 1 of a longer run): null is a value, undefined is absence.
    expect(jsonEqual({ a: null }, { b: null, a: undefined })).toBe(false);
    expect(jsonEqual({ b: null, a: undefined }, { a: null })).toBe(false);
    expect(jsonEqual({ a: null, b: undefined }, { a: null })).toBe(true);
    expect(jsonEqual([1, 2], [2, 1])).toBe(false);
    expect(jsonEqual({ a: [] }, { a: {} })).toBe(false);
    expect(jsonEqual(0, -0)).toBe(true);
  });
});
