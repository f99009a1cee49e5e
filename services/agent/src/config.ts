import { isDns1123Label } from '@meshplane/domain';
import { z } from 'zod';

export const AGENT_VERSION = '0.1.0';
export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

/** What one node agent needs; read from the environment once, at start-up. */
export interface AgentConfig {
  /** MESH_NODE: this node's name (a DNS-1123 label: it is a KV key and, later, a pin path). */
  node: string;
  cluster: string;
  natsUrl: string;
  /** MESH_API_URL: where `GET /v1/snapshot` is served (bootstrap when the stream cannot rebuild the state). */
  apiUrl?: string;
  /** MESH_TOKEN: bearer token for the API (viewer role is enough). */
  token?: string;
  dataplane: 'memory' | 'bpf';
  /** MESH_STATE_FILE: where the memory backend persists its maps (survives agent restarts). */
  stateFile?: string;
  heartbeatMs: number;
  /** MESH_RESYNC_MS: full read-back of the maps to repair drift. */
  fullPassMs: number;
  /** Revisions kept in the status value's recentApplies (propagation times). */
  recentApplies: number;
  agentVersion: string;
}

const intString = (name: string, min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `${name} must be an integer between ${min} and ${max}`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `${name} must be an integer between ${min} and ${max}`);

const url = (name: string, protocols: string[]) =>
  z.string().refine(
    (v) =>
      v.split(',').every((one) => {
        try {
          return protocols.includes(new URL(one.trim()).protocol);
        } catch {
          return false;
        }
      }),
    `${name} must be a ${protocols.map((p) => `${p}//`).join(' or ')} URL`,
  );

const EnvSchema = z.object({
  MESH_NODE: z
    .string('MESH_NODE is required (the name of this node)')
    .refine(isDns1123Label, 'MESH_NODE must be a DNS-1123 label (lowercase letters, digits and "-", max 63)'),
  MESH_CLUSTER: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'MESH_CLUSTER must be a DNS-1123 label')
    .max(63, 'MESH_CLUSTER must be at most 63 characters')
    .default('local'),
  NATS_URL: url('NATS_URL', ['nats:', 'tls:']).default(DEFAULT_NATS_URL),
  MESH_API_URL: url('MESH_API_URL', ['http:', 'https:']).optional(),
  MESH_TOKEN: z.string().optional(),
  MESH_DATAPLANE: z.enum(['memory', 'bpf'], 'MESH_DATAPLANE must be memory or bpf').default('memory'),
  MESH_STATE_FILE: z.string().optional(),
  MESH_HEARTBEAT_MS: intString('MESH_HEARTBEAT_MS', 100, 600_000).default(5000),
  MESH_RESYNC_MS: intString('MESH_RESYNC_MS', 1000, 86_400_000).default(30 * 60_000),
  MESH_RECENT_APPLIES: intString('MESH_RECENT_APPLIES', 1, 1000).default(64),
});

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Validates the environment; throws ConfigError naming every bad variable. */
export function loadAgentConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
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
  const config: AgentConfig = {
    node: e.MESH_NODE,
    cluster: e.MESH_CLUSTER,
    natsUrl: e.NATS_URL,
    dataplane: e.MESH_DATAPLANE,
    heartbeatMs: e.MESH_HEARTBEAT_MS,
    fullPassMs: e.MESH_RESYNC_MS,
    recentApplies: e.MESH_RECENT_APPLIES,
    agentVersion: AGENT_VERSION,
  };
  if (e.MESH_API_URL) config.apiUrl = e.MESH_API_URL.replace(/\/+$/, '');
  if (e.MESH_TOKEN) config.token = e.MESH_TOKEN;
  if (e.MESH_STATE_FILE) config.stateFile = e.MESH_STATE_FILE;
  return config;
}
