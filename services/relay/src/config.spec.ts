import { ConfigError, loadRelayConfig, redactUrl } from './config';
import { relayLockKey } from './leader-session';
import { createLogger } from './logger';
import { RelayMetrics } from './metrics';
import { sleep, Waker } from './waker';

describe('loadRelayConfig', () => {
  it('has working defaults', () => {
    const c = loadRelayConfig({});
    expect(c).toMatchObject({
      cluster: 'local',
      databaseUrl: 'postgres://postgres@127.0.0.1:5432/meshplane',
      natsUrl: 'nats://127.0.0.1:4222',
      pollMs: 1000,
      lockRetryMs: 500,
      logLevel: 'info',
    });
    expect(c.streamMaxMsgs).toBeUndefined();
    expect(c.instanceId).toContain(String(process.pid));
  });

  it('reads every variable; empty strings count as unset', () => {
    const c = loadRelayConfig({
      MESH_CLUSTER: 'eu-west',
      DATABASE_URL: 'postgresql://u:p@db:5432/mesh',
      NATS_URL: 'nats://a:4222,nats://b:4222',
      MESH_RELAY_POLL_MS: '250',
      MESH_STREAM_MAX_MSGS: '100',
      MESH_LOG_LEVEL: 'debug',
      MESH_RELAY_INSTANCE: 'relay-0',
      MESH_RELAY_PUBLISH_WINDOW: '',
    });
    expect(c).toMatchObject({
      cluster: 'eu-west',
      natsUrl: 'nats://a:4222,nats://b:4222',
      pollMs: 250,
      streamMaxMsgs: 100,
      logLevel: 'debug',
      instanceId: 'relay-0',
      publishWindow: 64,
    });
  });

  it('names every bad variable at once', () => {
    let err: ConfigError | undefined;
    try {
      loadRelayConfig({
        MESH_CLUSTER: 'Bad.Name',
        DATABASE_URL: 'mysql://x',
        NATS_URL: 'http://x',
        MESH_RELAY_POLL_MS: '5',
        MESH_STREAM_MAX_MSGS: '-1',
        MESH_LOG_LEVEL: 'loud',
      });
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.problems).toEqual([
      'MESH_CLUSTER must be a DNS-1123 label',
      'DATABASE_URL must be a postgres:// or postgresql:// URL',
      'NATS_URL must be a nats:// or tls:// URL',
      'MESH_RELAY_POLL_MS must be an integer between 10 and 600000',
      `MESH_STREAM_MAX_MSGS must be an integer between 1 and ${Number.MAX_SAFE_INTEGER}`,
      'MESH_LOG_LEVEL must be debug, info, warn or error',
    ]);
    expect(err!.message).toContain('invalid configuration:\n  - MESH_CLUSTER');
  });

  it('redacts passwords', () => {
    expect(redactUrl('postgres://u:secret@h/db')).toBe('postgres://u:***@h/db');
    expect(redactUrl('nats://a:1,nats://u:pw@b:2')).toBe('nats://a:1,nats://u:***@b:2');
  });
});

describe('relayLockKey', () => {
  it('is a stable signed 64-bit key per cluster', () => {
    const k = relayLockKey('local');
    expect(k).toBe(relayLockKey('local'));
    expect(k).not.toBe(relayLockKey('east'));
    const n = BigInt(k);
    expect(n >= -(2n ** 63n) && n < 2n ** 63n).toBe(true);
  });
});

describe('Waker', () => {
  it('remembers a wake that arrives while nobody waits', async () => {
    const w = new Waker();
    w.wake();
    const t0 = Date.now();
    await w.wait(5_000);
    expect(Date.now() - t0).toBeLessThan(100);
  });

  it('ends a wait on wake, on timeout and on abort', async () => {
    const w = new Waker();
    const p = w.wait(5_000);
    w.wake();
    await p;
    const t0 = Date.now();
    await w.wait(30);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(25);
    const ac = new AbortController();
    const q = w.wait(5_000, ac.signal);
    ac.abort();
    await q;
    await sleep(5_000, ac.signal); // already aborted: returns at once
  });
});

describe('RelayMetrics', () => {
  it('tracks lag, role changes and publishes', () => {
    const m = new RelayMetrics();
    expect(m.role).toBe('starting');
    m.setRole('leader');
    expect(m.leaderSince).toBeInstanceOf(Date);
    m.observeHead(10);
    m.observeHead(Number.NaN);
    m.setCheckpoint(4);
    expect(m.lagRevisions).toBe(6);
    m.published(5, false);
    m.published(6, true);
    expect(m).toMatchObject({
      lastPublishedRevision: 6,
      publishedTotal: 1,
      duplicatesTotal: 1,
      lagRevisions: 4,
    });
    m.setRole('standby');
    expect(m.leaderSince).toBeNull();
    expect(m.snapshot()).toMatchObject({ role: 'standby', leadershipsTotal: 1, headRevision: 10 });
  });
});

describe('createLogger', () => {
  it('filters by level and stamps the base fields', () => {
    const lines: Record<string, unknown>[] = [];
    const log = createLogger('info', { service: 'relay' }, (l) => lines.push(l));
    log.debug('hidden');
    log.info('shown', { revision: 3 });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'info', msg: 'shown', service: 'relay', revision: 3 });
    expect(log.enabled('debug')).toBe(false);
  });
});

describe('loadRelayConfig: MESH_METRICS_PORT', () => {
  it('MESH_METRICS_PORT: 0 or unset is off, a port turns GET /metrics on, anything else is refused', () => {
    expect(loadRelayConfig({}).metricsPort).toBeUndefined();
    expect(loadRelayConfig({ MESH_METRICS_PORT: '0' }).metricsPort).toBeUndefined();
    expect(loadRelayConfig({ MESH_METRICS_PORT: '9465' }).metricsPort).toBe(9465);
    expect(() => loadRelayConfig({ MESH_METRICS_PORT: '-1' })).toThrow(/MESH_METRICS_PORT/);
  });
});
