import {
  ConfigError,
  clusterEnv,
  DEFAULT_DATABASE_URL,
  DEFAULT_NATS_URL,
  intEnv,
  parseEnv,
  redactUrl,
  urlEnv,
} from '@meshplane/config';
import { z } from 'zod';

export { ConfigError, DEFAULT_DATABASE_URL, DEFAULT_NATS_URL, redactUrl };

/** What the API needs to run; read from the environment once, at start-up. */
export interface ApiConfig {
  databaseUrl: string;
  port: number;
  host: string;
  cluster: string;
  bootstrapToken?: string;
  snapshotInterval?: number;
  /**
   * NATS servers (comma-separated) holding node status and the revision stream; only
   * `/v1/nodes` and propagation need it, so it is optional here (default DEFAULT_NATS_URL).
   */
  natsUrl?: string;
  /** A node whose last heartbeat is older than this is OFFLINE (default 15 s). */
  nodeOfflineAfterMs?: number;
  /** Receives one structured object per request; main writes JSON lines to stdout. */
  logSink?: (line: Record<string, unknown>) => void;
}

/** Agents heartbeat every few seconds; three missed beats make a node OFFLINE. */
export const DEFAULT_NODE_OFFLINE_AFTER_MS = 15_000;

const EnvSchema = z.object({
  DATABASE_URL: urlEnv('DATABASE_URL', ['postgres:', 'postgresql:']).default(DEFAULT_DATABASE_URL),
  MESH_API_PORT: intEnv('MESH_API_PORT', 0, 65535).default(8080),
  MESH_API_HOST: z.string().min(1, 'MESH_API_HOST must not be empty').default('127.0.0.1'),
  MESH_CLUSTER: clusterEnv,
  // Shorter secrets could be guessed; the token is compared by its SHA-256 only.
  MESH_BOOTSTRAP_TOKEN: z.string().min(16, 'MESH_BOOTSTRAP_TOKEN must be at least 16 characters').optional(),
  MESH_SNAPSHOT_INTERVAL: intEnv('MESH_SNAPSHOT_INTERVAL', 0, 1_000_000).optional(),
  NATS_URL: urlEnv('NATS_URL', ['nats:', 'tls:']).default(DEFAULT_NATS_URL),
  MESH_NODE_OFFLINE_AFTER_MS: intEnv('MESH_NODE_OFFLINE_AFTER_MS', 100, 86_400_000).default(
    DEFAULT_NODE_OFFLINE_AFTER_MS,
  ),
});

/** Validates the environment; throws ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): ApiConfig {
  const e = parseEnv(EnvSchema, env);
  const config: ApiConfig = {
    databaseUrl: e.DATABASE_URL,
    port: e.MESH_API_PORT,
    host: e.MESH_API_HOST,
    cluster: e.MESH_CLUSTER,
    natsUrl: e.NATS_URL,
    nodeOfflineAfterMs: e.MESH_NODE_OFFLINE_AFTER_MS,
  };
  if (e.MESH_BOOTSTRAP_TOKEN !== undefined) config.bootstrapToken = e.MESH_BOOTSTRAP_TOKEN;
  if (e.MESH_SNAPSHOT_INTERVAL !== undefined) config.snapshotInterval = e.MESH_SNAPSHOT_INTERVAL;
  return config;
}
