import { closeDetails, targetMisses } from './report';

describe('bench/lib report', () => {
  it('reports only the metrics present that miss their target, with the tail', () => {
    const targets = {
      ratio: { op: '>=', threshold: 0.5 },
      p50: { op: '<=', threshold: 10 },
      absent: { op: '>=', threshold: 1 },
    } as const;
    expect(targetMisses({ ratio: 0.25, p50: 10 }, targets, '.')).toEqual(['ratio MISS (0.25 vs >= 0.5).']);
    expect(targetMisses({ ratio: 0.5, p50: 12 }, targets, ': see details.')).toEqual([
      'p50 MISS (12 vs <= 10): see details.',
    ]);
  });

  it('ends the details with the load average, then findings that can read it', () => {
    const details: Record<string, unknown> = { phase: 1 };
    closeDetails({ x: 2 }, details, (m, d) => [`x=${m.x} keys=${Object.keys(d).join(',')}`]);
    expect(Object.keys(details)).toEqual(['phase', 'load_average_at_end', 'findings']);
    expect(details.load_average_at_end).toHaveLength(3);
    expect(details.findings).toEqual(['x=2 keys=phase,load_average_at_end']);
  });
});
