import { z } from 'zod';

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

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/meshplane';
export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';
/** Agents heartbeat every few seconds; three missed beats make a node OFFLINE. */
export const DEFAULT_NODE_OFFLINE_AFTER_MS = 15_000;

const intString = (name: string, min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `${name} must be an integer between ${min} and ${max}`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `${name} must be an integer between ${min} and ${max}`);

const EnvSchema = z.object({
  DATABASE_URL: z
    .string()
    .default(DEFAULT_DATABASE_URL)
    .refine((v) => {
      try {
        return ['postgres:', 'postgresql:'].includes(new URL(v).protocol);
      } catch {
        return false;
      }
    }, 'DATABASE_URL must be a postgres:// URL'),
  MESH_API_PORT: intString('MESH_API_PORT', 0, 65535).default(8080),
  MESH_API_HOST: z.string().min(1, 'MESH_API_HOST must not be empty').default('127.0.0.1'),
  MESH_CLUSTER: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'MESH_CLUSTER must be a DNS-1123 label')
    .max(63, 'MESH_CLUSTER must be at most 63 characters')
    .default('local'),
  // Shorter secrets could be guessed; the token is compared by its SHA-256 only.
  MESH_BOOTSTRAP_TOKEN: z.string().min(16, 'MESH_BOOTSTRAP_TOKEN must be at least 16 characters').optional(),
  MESH_SNAPSHOT_INTERVAL: intString('MESH_SNAPSHOT_INTERVAL', 0, 1_000_000).optional(),
  NATS_URL: z
    .string()
    .default(DEFAULT_NATS_URL)
    .refine(
      (v) =>
        v.split(',').every((one) => {
          try {
            return ['nats:', 'tls:'].includes(new URL(one.trim()).protocol);
          } catch {
            return false;
          }
        }),
      'NATS_URL must be nats:// or tls:// URLs, comma-separated',
    ),
  MESH_NODE_OFFLINE_AFTER_MS: intString('MESH_NODE_OFFLINE_AFTER_MS', 100, 86_400_000).default(
    DEFAULT_NODE_OFFLINE_AFTER_MS,
  ),
});

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Validates the environment; throws ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): ApiConfig {
  // Empty strings count as unset, as they do in most deployment tools.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const r = EnvSchema.safeParse(cleaned);
  if (!r.success) {
    throw new ConfigError(
      r.error.issues.map((i) => {
        const name = String(i.path[0] ?? 'environment');
        return i.message.startsWith(name) ? i.message : `${name}: ${i.message}`;
      }),
    );
  }
  const e = r.data;
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

/** Redacts the password of a database URL for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable url)';
  }
}
