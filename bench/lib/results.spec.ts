import { evaluateTargets, formatTable, meetsTarget } from './results';

describe('bench/lib results', () => {
  it('evaluates targets in both directions, inclusive', () => {
    expect(meetsTarget(0.5, { op: '>=', threshold: 0.5 })).toBe(true);
    expect(meetsTarget(0.49, { op: '>=', threshold: 0.5 })).toBe(false);
    expect(meetsTarget(10, { op: '<=', threshold: 10 })).toBe(true);
    expect(meetsTarget(Number.NaN, { op: '<=', threshold: 10 })).toBe(false);
    expect(() => evaluateTargets({}, { missing: { op: '>=', threshold: 1 } })).toThrow(/unknown metric/);
  });

  it('prints every metric with its target and PASS/MISS', () => {
    const table = formatTable({ a_per_s: 1234.5, ratio: 0.25 }, { ratio: { op: '>=', threshold: 0.5 } });
    expect(table).toMatch(/a_per_s\s+1,235/);
    expect(table).toMatch(/ratio\s+0\.250\s+>= 0\.5\s+MISS/);
  });
});
