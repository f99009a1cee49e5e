import { untilQuiet } from './timing';

describe('untilQuiet', () => {
  /** A process that burns `busy[i]` ms of CPU during the i-th window. */
  const fake = (busy: number[]) => {
    let cpu = 0;
    let i = 0;
    return {
      cpuMs: () => cpu,
      sleep: async () => {
        cpu += busy[i++] ?? 0;
      },
    };
  };

  it('returns after the first window in which the process used less than its share of a core', async () => {
    const r = await untilQuiet({ windowMs: 100, maxCoreShare: 0.05, ...fake([80, 40, 6, 4]) });
    expect(r).toEqual({ waitedMs: 400, quiet: true });
  });

  it('waits at least minMs even when the first windows are quiet', async () => {
    const r = await untilQuiet({ windowMs: 250, minMs: 1000, ...fake([0, 0, 0, 0, 0]) });
    expect(r).toEqual({ waitedMs: 1000, quiet: true });
  });

  it('gives up after maxMs and says it never got quiet', async () => {
    const r = await untilQuiet({ windowMs: 100, maxMs: 300, ...fake([90, 90, 90, 90, 0]) });
    expect(r).toEqual({ waitedMs: 300, quiet: false });
  });
});
