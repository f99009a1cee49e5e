import { selectDataplane } from './dataplane';

describe('selectDataplane', () => {
  const yes = () => true as const;
  const no = () => 'bpffs is not mounted at /sys/fs/bpf';
  const cgroup = '/sys/fs/cgroup/meshplane-n1';

  it('obeys MESH_DATAPLANE=memory without probing', () => {
    const probe = jest.fn(yes);
    expect(selectDataplane({ dataplane: 'memory', cgroup }, probe)).toEqual({
      kind: 'memory',
      reason: 'MESH_DATAPLANE=memory',
    });
    expect(probe).not.toHaveBeenCalled();
  });

  it('MESH_DATAPLANE=bpf fails loudly, naming why, when BPF cannot run here', () => {
    expect(selectDataplane({ dataplane: 'bpf', cgroup }, yes)).toEqual({
      kind: 'bpf',
      reason: 'MESH_DATAPLANE=bpf',
    });
    expect(() => selectDataplane({ dataplane: 'bpf', cgroup }, no)).toThrow(
      'MESH_DATAPLANE=bpf, but BPF is unavailable here: bpffs is not mounted at /sys/fs/bpf',
    );
    expect(() => selectDataplane({ dataplane: 'bpf' }, yes)).toThrow(/needs MESH_CGROUP/);
  });

  it('unset: bpf when the probe passes and a cgroup is configured, else memory with the reason', () => {
    expect(selectDataplane({ dataplane: 'auto', cgroup }, yes)).toEqual({
      kind: 'bpf',
      reason: 'MESH_DATAPLANE unset and BPF is available',
    });
    expect(selectDataplane({ dataplane: 'auto', cgroup }, no)).toEqual({
      kind: 'memory',
      reason: 'MESH_DATAPLANE unset and BPF is unavailable: bpffs is not mounted at /sys/fs/bpf',
    });
    expect(selectDataplane({ dataplane: 'auto' }, yes)).toMatchObject({
      kind: 'memory',
      reason: expect.stringContaining('MESH_CGROUP is not set'),
    });
  });
});
