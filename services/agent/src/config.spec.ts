import { ConfigError, loadAgentConfig } from './config';

describe('loadAgentConfig', () => {
  it('requires MESH_NODE and applies defaults', () => {
    expect(() => loadAgentConfig({})).toThrow(/MESH_NODE is required/);
    expect(loadAgentConfig({ MESH_NODE: 'node-a' })).toMatchObject({
      node: 'node-a',
      cluster: 'local',
      natsUrl: 'nats://127.0.0.1:4222',
      dataplane: 'memory',
      heartbeatMs: 5000,
      fullPassMs: 1_800_000,
      recentApplies: 64,
    });
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
    });
    expect(c).toMatchObject({
      cluster: 'east',
      apiUrl: 'http://127.0.0.1:8080',
      token: 'secret',
      dataplane: 'bpf',
      stateFile: '/tmp/n1.json',
      heartbeatMs: 250,
    });
    try {
      loadAgentConfig({
        MESH_NODE: 'Node_A',
        MESH_DATAPLANE: 'ebpf',
        MESH_HEARTBEAT_MS: 'soon',
        MESH_API_URL: 'ftp://x',
      });
      throw new Error('expected a ConfigError');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const text = (err as ConfigError).problems.join('\n');
      for (const name of ['MESH_NODE', 'MESH_DATAPLANE', 'MESH_HEARTBEAT_MS', 'MESH_API_URL'])
        expect(text).toContain(name);
    }
  });

  it('treats empty strings as unset', () => {
    expect(loadAgentConfig({ MESH_NODE: 'n1', MESH_CLUSTER: '', MESH_API_URL: '' })).toMatchObject({
      cluster: 'local',
    });
  });
});
