import { Registry } from './prometheus';

describe('Prometheus registry', () => {
  it('renders counters and gauges with escaped labels', () => {
    const r = new Registry();
    const c = r.counter('mesh_map_ops_total', 'Map entries written.', ['node', 'map']);
    const g = r.gauge('mesh_applied_revision', 'Applied revision.', ['node']);
    c.inc({ node: 'n1', map: 'mesh_services' }, 3);
    c.inc({ node: 'n1', map: 'mesh_services' });
    g.set({ node: 'n"1' }, 7);
    expect(r.render()).toBe(
      [
        '# HELP mesh_map_ops_total Map entries written.',
        '# TYPE mesh_map_ops_total counter',
        'mesh_map_ops_total{node="n1",map="mesh_services"} 4',
        '# HELP mesh_applied_revision Applied revision.',
        '# TYPE mesh_applied_revision gauge',
        'mesh_applied_revision{node="n\\"1"} 7',
        '',
      ].join('\n'),
    );
  });

  it('renders cumulative histogram buckets, +Inf, sum and count', () => {
    const r = new Registry();
    const h = r.histogram('mesh_propagation_seconds', 'Commit to applied.', ['node'], [0.1, 1]);
    for (const v of [0.05, 0.5, 0.7, 3]) h.observe({ node: 'n1' }, v);
    const lines = r.render().split('\n');
    expect(lines).toEqual(
      expect.arrayContaining([
        'mesh_propagation_seconds_bucket{node="n1",le="0.1"} 1',
        'mesh_propagation_seconds_bucket{node="n1",le="1"} 3',
        'mesh_propagation_seconds_bucket{node="n1",le="+Inf"} 4',
        'mesh_propagation_seconds_sum{node="n1"} 4.25',
        'mesh_propagation_seconds_count{node="n1"} 4',
      ]),
    );
    expect(h.count({ node: 'n1' })).toBe(4);
  });

  it('refuses bad names, duplicate registrations, decreasing buckets and negative counter steps', () => {
    const r = new Registry();
    expect(() => r.gauge('bad-name', 'x')).toThrow('invalid metric name');
    r.gauge('ok', 'x');
    expect(() => r.gauge('ok', 'x')).toThrow('registered twice');
    expect(() => r.histogram('h', 'x', [], [1, 1])).toThrow('buckets must increase');
    expect(() => r.counter('c', 'x').inc({}, -1)).toThrow('only goes up');
  });
});

describe('bound series', () => {
  it('update the same series as the label-taking methods, and appear only once updated', () => {
    const r = new Registry();
    const c = r.counter('c_total', 'c', ['node', 'map']);
    const g = r.gauge('g', 'g', ['node']);
    const h = r.histogram('h_seconds', 'h', ['node'], [1]);
    const bc = c.bind({ node: 'n1', map: 'm' });
    const bg = g.bind({ node: 'n1' });
    const bh = h.bind({ node: 'n1' });
    expect(r.render()).not.toContain('n1');
    expect(h.count({ node: 'n1' })).toBe(0);
    expect(r.render()).not.toContain('h_seconds_count');
    bc.inc();
    c.inc({ node: 'n1', map: 'm' }, 2);
    bg.set(7);
    bh.observe(0.5);
    h.observe({ node: 'n1' }, 2);
    expect(c.get({ node: 'n1', map: 'm' })).toBe(3);
    expect(bg.get()).toBe(7);
    expect(g.get({ node: 'n1' })).toBe(7);
    expect(h.count({ node: 'n1' })).toBe(2);
    expect(r.render().split('\n')).toEqual(
      expect.arrayContaining([
        'c_total{node="n1",map="m"} 3',
        'g{node="n1"} 7',
        'h_seconds_bucket{node="n1",le="1"} 1',
        'h_seconds_bucket{node="n1",le="+Inf"} 2',
        'h_seconds_sum{node="n1"} 2.5',
        'h_seconds_count{node="n1"} 2',
      ]),
    );
    expect(() => bc.inc(-1)).toThrow('only goes up');
  });
});
