import { describeCaches, evaluateTargets, formatTable, meetsTarget } from './results';

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

describe('describeCaches', () => {
  const level = (lvl: string, type: string, size: string, sharedCpus: string) => ({
    level: lvl,
    type,
    size,
    sharedCpus,
  });

  it('names each level, marks data and instruction caches and counts the CPUs sharing one', () => {
    expect(
      describeCaches([
        level('1', 'Data', '32K', '0'),
        level('1', 'Instruction', '64K', '0'),
        level('2', 'Unified', '512K', '0'),
        level('3', 'Unified', '8192K', '0-1'),
      ]),
    ).toBe('L1d 32K, L1i 64K, L2 512K, L3 8192K/2');
  });

  it('reads ranges and lists of CPUs', () => {
    expect(describeCaches([level('3', 'Unified', '32768K', '0-3,8-11,16')])).toBe('L3 32768K/9');
  });

  it('says unknown when there is nothing to describe', () => {
    expect(describeCaches([])).toBe('unknown');
  });
});
