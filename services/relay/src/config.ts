import os from 'node:os';
import {
  ConfigError,
  clusterEnv,
  DEFAULT_DATABASE_URL,
  DEFAULT_NATS_URL,
  intEnv,
  logLevelEnv,
  parseEnv,
  redactUrl,
  urlEnv,
} from '@meshplane/config';
import { z } from 'zod';

export { ConfigError, DEFAULT_DATABASE_URL, DEFAULT_NATS_URL, redactUrl };

import type { LogLevel, LogSink } from './logger';

/** What the relay needs to run; read from the environment once, at start-up. */
export interface RelayConfig {
  cluster: string;
  databaseUrl: string;
  natsUrl: string;
  /** Fallback poll when no NOTIFY arrives (missed while the listen connection was down). */
  pollMs: number;
  /** Keep at most this many revisions in the stream (tests of the agent's snapshot path). */
  streamMaxMsgs?: number;
  /** How often a standby tries to take the advisory lock. */
  lockRetryMs: number;
  /** How often the leader checks that its lock session is alive (a dead one means lost leadership). */
  sessionCheckMs: number;
  /** Revisions read per query pair while catching up. */
  batchSize: number;
  /** Publishes in flight at once; order is still guaranteed by expected-last-sequence. */
  publishWindow: number;
  /** A leader that cannot publish for this long steps down so that another instance can try. */
  stepDownAfterMs: number;
  logLevel: LogLevel;
  /** MESH_METRICS_PORT: loopback port of GET /metrics (Prometheus text); 0 = off (default). */
  metricsPort?: number;
  /** Name in logs and in NATS/Postgres client names. */
  instanceId: string;
  /** Receives one object per log line; main writes JSON lines to stdout. */
  logSink?: LogSink;
}

const EnvSchema = z.object({
  MESH_CLUSTER: clusterEnv,
  DATABASE_URL: urlEnv('DATABASE_URL', ['postgres:', 'postgresql:']).default(DEFAULT_DATABASE_URL),
  NATS_URL: urlEnv('NATS_URL', ['nats:', 'tls:']).default(DEFAULT_NATS_URL),
  MESH_RELAY_POLL_MS: intEnv('MESH_RELAY_POLL_MS', 10, 600_000).default(1000),
  MESH_STREAM_MAX_MSGS: intEnv('MESH_STREAM_MAX_MSGS', 1, Number.MAX_SAFE_INTEGER).optional(),
  MESH_RELAY_LOCK_RETRY_MS: intEnv('MESH_RELAY_LOCK_RETRY_MS', 10, 60_000).default(500),
  MESH_RELAY_SESSION_CHECK_MS: intEnv('MESH_RELAY_SESSION_CHECK_MS', 100, 60_000).default(1000),
  MESH_RELAY_BATCH_SIZE: intEnv('MESH_RELAY_BATCH_SIZE', 1, 10_000).default(500),
  MESH_RELAY_PUBLISH_WINDOW: intEnv('MESH_RELAY_PUBLISH_WINDOW', 1, 1024).default(64),
  MESH_RELAY_STEP_DOWN_MS: intEnv('MESH_RELAY_STEP_DOWN_MS', 1000, 3_600_000).default(30_000),
  MESH_LOG_LEVEL: logLevelEnv,
  MESH_RELAY_INSTANCE: z.string().min(1).max(128).optional(),
  MESH_METRICS_PORT: intEnv('MESH_METRICS_PORT', 0, 65_535).default(0),
});

/** Validates the environment once, at start-up; throws ConfigError naming every bad variable. */
export function loadRelayConfig(env: NodeJS.ProcessEnv = process.env): RelayConfig {
  const e = parseEnv(EnvSchema, env);
  const config: RelayConfig = {
    cluster: e.MESH_CLUSTER,
    databaseUrl: e.DATABASE_URL,
    natsUrl: e.NATS_URL,
    pollMs: e.MESH_RELAY_POLL_MS,
    lockRetryMs: e.MESH_RELAY_LOCK_RETRY_MS,
    sessionCheckMs: e.MESH_RELAY_SESSION_CHECK_MS,
    batchSize: e.MESH_RELAY_BATCH_SIZE,
    publishWindow: e.MESH_RELAY_PUBLISH_WINDOW,
    stepDownAfterMs: e.MESH_RELAY_STEP_DOWN_MS,
    logLevel: e.MESH_LOG_LEVEL,
    instanceId: e.MESH_RELAY_INSTANCE ?? `${os.hostname()}/${process.pid}`,
  };
  if (e.MESH_METRICS_PORT > 0) config.metricsPort = e.MESH_METRICS_PORT;
  if (e.MESH_STREAM_MAX_MSGS !== undefined) config.streamMaxMsgs = e.MESH_STREAM_MAX_MSGS;
  return config;
}
