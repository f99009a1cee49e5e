import { ConfigError, loadAgentConfig } from './config';

describe('loadAgentConfig', () => {
  it('requires MESH_NODE and applies defaults', () => {
    expect(() => loadAgentConfig({})).toThrow(/MESH_NODE is required/);
    expect(loadAgentConfig({ MESH_NODE: 'node-a' })).toMatchObject({
      node: 'node-a',
      cluster: 'local',
      natsUrl: 'nats://127.0.0.1:4222',
      dataplane: 'auto',
      bpfPinDir: '/sys/fs/bpf/meshplane/node-a',
      cgroupScanMs: 2000,
      teardown: false,
      heartbeatMs: 5000,
      consumerHeartbeatMs: 5000,
      fullPassMs: 1_800_000,
      recentApplies: 64,
      statusIntervalMs: 1000,
    });
    expect(loadAgentConfig({ MESH_NODE: 'node-a' }).cgroup).toBeUndefined();
    expect(loadAgentConfig({ MESH_NODE: 'node-a', MESH_STATUS_INTERVAL_MS: '0' }).statusIntervalMs).toBe(0);
    expect(() => loadAgentConfig({ MESH_NODE: 'node-a', MESH_STATUS_INTERVAL_MS: '-1' })).toThrow(
      /MESH_STATUS_INTERVAL_MS/,
    );
  });

  it('reads every variable and names each bad one', () => {
    const c = loadAgentConfig({
      MESH_NODE: 'n1',
      MESH_CLUSTER: 'east',
      NATS_URL: 'nats://127.0.0.1:4333',
      MESH_API_URL: 'http://127.0.0.1:8080/',
      MESH_TOKEN: 'secret',
      MESH_DATAPLANE: 'bpf',
      MESH_STATE_FILE: '/tmp/n1.json',
      MESH_HEARTBEAT_MS: '250',
      MESH_CONSUMER_HEARTBEAT_MS: '1000',
      MESH_CGROUP: '/sys/fs/cgroup/meshplane/n1/',
      MESH_BPF_PIN_DIR: '/sys/fs/bpf/custom/n1/',
      MESH_BPF_OBJECT: '/opt/meshplane/mesh.bpf.o',
      MESH_CGROUP_SCAN_MS: '500',
      MESH_RESYNC_MS: '1000',
    });
    expect(c).toMatchObject({
      cluster: 'east',
      apiUrl: 'http://127.0.0.1:8080',
      token: 'secret',
      dataplane: 'bpf',
      stateFile: '/tmp/n1.json',
      heartbeatMs: 250,
      consumerHeartbeatMs: 1000,
      cgroup: '/sys/fs/cgroup/meshplane/n1',
      bpfPinDir: '/sys/fs/bpf/custom/n1',
      bpfObject: '/opt/meshplane/mesh.bpf.o',
      cgroupScanMs: 500,
      fullPassMs: 1000,
    });
    try {
      loadAgentConfig({
        MESH_NODE: 'Node_A',
        MESH_DATAPLANE: 'ebpf',
        MESH_HEARTBEAT_MS: 'soon',
        MESH_CONSUMER_HEARTBEAT_MS: '100',
        MESH_API_URL: 'ftp://x',
      });
      throw new Error('expected a ConfigError');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const text = (err as ConfigError).problems.join('\n');
      for (const name of [
        'MESH_NODE',
        'MESH_DATAPLANE',
        'MESH_HEARTBEAT_MS',
        'MESH_CONSUMER_HEARTBEAT_MS',
        'MESH_API_URL',
      ])
        expect(text).toContain(name);
    }
  });

  it('bpf needs MESH_CGROUP, an absolute path that is not /; teardown needs none', () => {
    expect(() => loadAgentConfig({ MESH_NODE: 'n1', MESH_DATAPLANE: 'bpf' })).toThrow(
      /MESH_CGROUP is required/,
    );
    expect(() => loadAgentConfig({ MESH_NODE: 'n1', MESH_CGROUP: 'meshplane' })).toThrow(
      /MESH_CGROUP must be an absolute path/,
    );
    expect(() => loadAgentConfig({ MESH_NODE: 'n1', MESH_CGROUP: '/sys/fs/cgroup/../x' })).toThrow(
      /MESH_CGROUP must be an absolute path/,
    );
    expect(() => loadAgentConfig({ MESH_NODE: 'n1', MESH_CGROUP: '//' })).toThrow(/not be the root/);
    expect(loadAgentConfig({ MESH_NODE: 'n1', MESH_DATAPLANE: 'bpf', MESH_TEARDOWN: '1' })).toMatchObject({
      teardown: true,
      dataplane: 'bpf',
    });
    expect(() => loadAgentConfig({ MESH_NODE: 'n1', MESH_TEARDOWN: 'yes' })).toThrow(/MESH_TEARDOWN/);
    expect(loadAgentConfig({ MESH_NODE: 'n1', MESH_DATAPLANE: 'memory' }).dataplane).toBe('memory');
  });

  it('treats empty strings as unset', () => {
    expect(loadAgentConfig({ MESH_NODE: 'n1', MESH_CLUSTER: '', MESH_API_URL: '' })).toMatchObject({
      cluster: 'local',
    });
  });

  it('MESH_METRICS_PORT: 0 or unset is off, a port turns GET /metrics on, anything else is refused', () => {
    expect(loadAgentConfig({ MESH_NODE: 'n1' }).metricsPort).toBeUndefined();
    expect(loadAgentConfig({ MESH_NODE: 'n1', MESH_METRICS_PORT: '0' }).metricsPort).toBeUndefined();
    expect(loadAgentConfig({ MESH_NODE: 'n1', MESH_METRICS_PORT: '9464' }).metricsPort).toBe(9464);
    expect(() => loadAgentConfig({ MESH_NODE: 'n1', MESH_METRICS_PORT: '70000' })).toThrow(
      /MESH_METRICS_PORT/,
    );
  });
});
