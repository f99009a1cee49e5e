import { applyChanges, type Change, emptyState } from '@meshplane/domain';
import { type CgroupOps, changedCgroups, WorkloadCgroups } from './workload-cgroups';

/** An in-memory cgroupfs: directories with inode numbers, created and removed at will. */
function fakeFs() {
  const dirs = new Map<string, bigint>();
  let ino = 100n;
  const ops: CgroupOps = {
    ensure(root, ns, name) {
      if (name === 'broken') throw new Error('EACCES: permission denied');
      const k = `${root}/${ns}.${name}`;
      if (!dirs.has(k)) dirs.set(k, ino++);
    },
    idOf: (root, ns, name) => dirs.get(`${root}/${ns}.${name}`),
  };
  return { dirs, ops };
}

const workload = (name: string, node: string): Change => ({
  op: 'put',
  kind: 'Workload',
  namespace: 'default',
  name,
  spec: { address: '127.0.1.9', node, labels: { app: name }, identity: name },
});

describe('WorkloadCgroups', () => {
  it('creates cgroups for the workloads of its node only and reports their ids', () => {
    const { dirs, ops } = fakeFs();
    const cg = new WorkloadCgroups('/cg/n1', 'n1', undefined, ops);
    const state = applyChanges(emptyState(), [workload('a', 'n1'), workload('b', 'n2')], 1);
    cg.reset(state);
    expect(cg.size).toBe(1);
    expect(cg.snapshot()).toEqual(new Map([['Workload/default/a', '']]));
    cg.ensureAll();
    expect([...dirs.keys()]).toEqual(['/cg/n1/default.a']);
    expect(cg.snapshot()).toEqual(new Map([['Workload/default/a', '100']]));
    expect(cg.idOf({ namespace: 'default', name: 'a' })).toBe(100n);
    expect(cg.present()).toBe(1);
  });

  it('follows workloads moving onto and off the node', () => {
    const { ops } = fakeFs();
    const cg = new WorkloadCgroups('/cg/n1', 'n1', undefined, ops);
    let state = applyChanges(emptyState(), [workload('a', 'n1')], 1);
    cg.reset(state);
    state = applyChanges(state, [workload('a', 'n2'), workload('c', 'n1')], 2);
    cg.track(state, ['Workload/default/a', 'Workload/default/c', 'Service/default/x']);
    expect([...cg.snapshot().keys()]).toEqual(['Workload/default/c']);
  });

  it('a cgroup removed and re-created gets a new id, which a snapshot diff names', () => {
    const { dirs, ops } = fakeFs();
    const cg = new WorkloadCgroups('/cg/n1', 'n1', undefined, ops);
    cg.reset(applyChanges(emptyState(), [workload('a', 'n1'), workload('b', 'n1')], 1));
    cg.ensureAll();
    const before = cg.snapshot();
    dirs.delete('/cg/n1/default.b');
    const gone = cg.snapshot();
    expect(changedCgroups(before, gone)).toEqual(['Workload/default/b']);
    cg.ensureAll();
    const back = cg.snapshot();
    expect(back.get('Workload/default/b')).toBe('102');
    expect(changedCgroups(before, back)).toEqual(['Workload/default/b']);
    expect(changedCgroups(back, back)).toEqual([]);
    expect(changedCgroups(new Map(), back)).toEqual(['Workload/default/a', 'Workload/default/b']);
  });

  it('reports a cgroup it cannot create once, and keeps the others', () => {
    const { ops } = fakeFs();
    const errors: string[] = [];
    const cg = new WorkloadCgroups('/cg/n1', 'n1', (key, msg) => errors.push(`${key}: ${msg}`), ops);
    cg.reset(applyChanges(emptyState(), [workload('broken', 'n1'), workload('ok', 'n1')], 1));
    cg.ensureAll();
    cg.ensureAll();
    expect(errors).toEqual(['Workload/default/broken: EACCES: permission denied']);
    expect(cg.present()).toBe(1);
  });
});
