import {
  ConfigError,
  DEFAULT_DATABASE_URL,
  DEFAULT_NATS_URL,
  DEFAULT_NODE_OFFLINE_AFTER_MS,
  loadConfig,
  redactUrl,
} from './config';

describe('loadConfig', () => {
  test('defaults', () => {
    expect(loadConfig({})).toEqual({
      databaseUrl: DEFAULT_DATABASE_URL,
      port: 8080,
      host: '127.0.0.1',
      cluster: 'local',
      natsUrl: DEFAULT_NATS_URL,
      nodeOfflineAfterMs: DEFAULT_NODE_OFFLINE_AFTER_MS,
    });
    expect(DEFAULT_NATS_URL).toBe('nats://127.0.0.1:4222');
    expect(DEFAULT_NODE_OFFLINE_AFTER_MS).toBe(15_000);
  });

  test('reads every variable; empty strings count as unset', () => {
    const c = loadConfig({
      DATABASE_URL: 'postgresql://app:secret@127.0.0.1:5433/mesh',
      MESH_API_PORT: '9090',
      MESH_API_HOST: '0.0.0.0',
      MESH_CLUSTER: 'east-1',
      MESH_BOOTSTRAP_TOKEN: 'a-very-long-bootstrap-token',
      MESH_SNAPSHOT_INTERVAL: '',
      NATS_URL: 'nats://127.0.0.1:4223, tls://127.0.0.2:4222',
      MESH_NODE_OFFLINE_AFTER_MS: '500',
    });
    expect(c).toEqual({
      databaseUrl: 'postgresql://app:secret@127.0.0.1:5433/mesh',
      port: 9090,
      host: '0.0.0.0',
      cluster: 'east-1',
      bootstrapToken: 'a-very-long-bootstrap-token',
      natsUrl: 'nats://127.0.0.1:4223, tls://127.0.0.2:4222',
      nodeOfflineAfterMs: 500,
    });
  });

  test('names every bad variable at once', () => {
    let err: unknown;
    try {
      loadConfig({
        DATABASE_URL: 'mysql://x',
        MESH_API_PORT: '65536',
        MESH_CLUSTER: 'East_1',
        MESH_BOOTSTRAP_TOKEN: 'short',
        MESH_SNAPSHOT_INTERVAL: '-1',
        NATS_URL: 'http://127.0.0.1:4222',
        MESH_NODE_OFFLINE_AFTER_MS: '50',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    for (const name of [
      'DATABASE_URL',
      'MESH_API_PORT',
      'MESH_CLUSTER',
      'MESH_BOOTSTRAP_TOKEN',
      'MESH_SNAPSHOT_INTERVAL',
      'NATS_URL',
      'MESH_NODE_OFFLINE_AFTER_MS',
    ])
      expect(problems).toContain(name);
  });

  test('redactUrl hides the password', () => {
    expect(redactUrl('postgres://app:secret@127.0.0.1/mesh')).toBe('postgres://app:***@127.0.0.1/mesh');
  });
});
