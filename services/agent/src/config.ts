import { ConfigError, clusterEnv, DEFAULT_NATS_URL, intEnv, parseEnv, urlEnv } from '@meshplane/config';
import { isDns1123Label } from '@meshplane/domain';
import { z } from 'zod';
import { DEFAULT_STATUS_INTERVAL_MS } from './status';

export { ConfigError, DEFAULT_NATS_URL };

export const AGENT_VERSION = '0.1.0';

export type DataplaneMode = 'memory' | 'bpf' | 'auto';

/** The pin directory of a node when MESH_BPF_PIN_DIR is unset. */
export const defaultBpfPinDir = (node: string) => `/sys/fs/bpf/meshplane/${node}`;

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
  /**
   * MESH_DATAPLANE: `bpf` (real maps and programs; fails when BPF is unusable), `memory`
   * (simulated maps, no traffic is steered) or `auto` (unset: bpf when the machine allows it
   * and MESH_CGROUP is set, else memory; the agent logs which and why).
   */
  dataplane: DataplaneMode;
  /** MESH_STATE_FILE: where the memory backend persists its maps (survives agent restarts). */
  stateFile?: string;
  /**
   * MESH_CGROUP: the cgroup v2 directory this agent owns (required for bpf). The programs are
   * attached to it; each local workload runs in a child `<namespace>.<name>` the agent creates.
   * Never the root cgroup, and it must lie inside the agent's own cgroup subtree.
   */
  cgroup?: string;
  /** MESH_BPF_PIN_DIR: where maps and links are pinned; default /sys/fs/bpf/meshplane/<node>. */
  bpfPinDir?: string;
  /** MESH_BPF_OBJECT: the compiled programs; default bpf/mesh.bpf.o of the repository root. */
  bpfObject?: string;
  /** MESH_CGROUP_SCAN_MS: how often workload cgroups are checked (created, re-created, new ids); default 2000. */
  cgroupScanMs?: number;
  /** MESH_TEARDOWN=1: detach and unpin everything of this node, remove its empty cgroups, and exit. */
  teardown?: boolean;
  heartbeatMs: number;
  /**
   * MESH_CONSUMER_HEARTBEAT_MS: the revision consumer's idle heartbeat from the server; two
   * missed ones (a consumer lost with a server) make the agent open a new one. Default 5000.
   */
  consumerHeartbeatMs?: number;
  /** MESH_RESYNC_MS: full read-back of the maps to repair drift. */
  fullPassMs: number;
  /** Revisions kept in the status value's recentApplies (propagation times). */
  recentApplies: number;
  /**
   * MESH_STATUS_INTERVAL_MS: least time between two status writes after applies (they are
   * coalesced; the last is always written, applied times stay exact); default 1000, 0 = every apply.
   */
  statusIntervalMs?: number;
  /** MESH_METRICS_PORT: loopback port of GET /metrics (Prometheus text); 0 = off (default). */
  metricsPort?: number;
  agentVersion: string;
}

const absolutePath = (name: string) =>
  z
    .string()
    .refine((v) => v.startsWith('/') && !v.split('/').includes('..'), `${name} must be an absolute path`);

const EnvSchema = z.object({
  MESH_NODE: z
    .string('MESH_NODE is required (the name of this node)')
    .refine(isDns1123Label, 'MESH_NODE must be a DNS-1123 label (lowercase letters, digits and "-", max 63)'),
  MESH_CLUSTER: clusterEnv,
  NATS_URL: urlEnv('NATS_URL', ['nats:', 'tls:']).default(DEFAULT_NATS_URL),
  MESH_API_URL: urlEnv('MESH_API_URL', ['http:', 'https:']).optional(),
  MESH_TOKEN: z.string().optional(),
  MESH_DATAPLANE: z
    .enum(['memory', 'bpf', 'auto'], 'MESH_DATAPLANE must be bpf, memory or auto')
    .default('auto'),
  MESH_STATE_FILE: z.string().optional(),
  MESH_CGROUP: absolutePath('MESH_CGROUP')
    .refine((p) => p.replace(/\/+$/, '') !== '', 'MESH_CGROUP must not be the root directory')
    .optional(),
  MESH_BPF_PIN_DIR: absolutePath('MESH_BPF_PIN_DIR').optional(),
  MESH_BPF_OBJECT: absolutePath('MESH_BPF_OBJECT').optional(),
  MESH_CGROUP_SCAN_MS: intEnv('MESH_CGROUP_SCAN_MS', 100, 600_000).default(2000),
  MESH_TEARDOWN: z
    .enum(['0', '1', 'true', 'false'], 'MESH_TEARDOWN must be 1, 0, true or false')
    .transform((v) => v === '1' || v === 'true')
    .default(false),
  MESH_HEARTBEAT_MS: intEnv('MESH_HEARTBEAT_MS', 100, 600_000).default(5000),
  MESH_CONSUMER_HEARTBEAT_MS: intEnv('MESH_CONSUMER_HEARTBEAT_MS', 500, 60_000).default(5000),
  MESH_RESYNC_MS: intEnv('MESH_RESYNC_MS', 1000, 86_400_000).default(30 * 60_000),
  MESH_RECENT_APPLIES: intEnv('MESH_RECENT_APPLIES', 1, 1000).default(64),
  MESH_STATUS_INTERVAL_MS: intEnv('MESH_STATUS_INTERVAL_MS', 0, 60_000).default(DEFAULT_STATUS_INTERVAL_MS),
  MESH_METRICS_PORT: intEnv('MESH_METRICS_PORT', 0, 65_535).default(0),
});

/** Validates the environment; throws ConfigError naming every bad variable. */
export function loadAgentConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const e = parseEnv(EnvSchema, env);
  // Teardown only needs to know where things are; everything else must name a cgroup for bpf.
  if (e.MESH_DATAPLANE === 'bpf' && !e.MESH_CGROUP && !e.MESH_TEARDOWN)
    throw new ConfigError([
      'MESH_CGROUP is required with MESH_DATAPLANE=bpf (a cgroup v2 directory the agent owns, never the root cgroup)',
    ]);
  const config: AgentConfig = {
    node: e.MESH_NODE,
    cluster: e.MESH_CLUSTER,
    natsUrl: e.NATS_URL,
    dataplane: e.MESH_DATAPLANE,
    bpfPinDir: (e.MESH_BPF_PIN_DIR ?? defaultBpfPinDir(e.MESH_NODE)).replace(/\/+$/, ''),
    cgroupScanMs: e.MESH_CGROUP_SCAN_MS,
    teardown: e.MESH_TEARDOWN,
    heartbeatMs: e.MESH_HEARTBEAT_MS,
    consumerHeartbeatMs: e.MESH_CONSUMER_HEARTBEAT_MS,
    fullPassMs: e.MESH_RESYNC_MS,
    recentApplies: e.MESH_RECENT_APPLIES,
    statusIntervalMs: e.MESH_STATUS_INTERVAL_MS,
    agentVersion: AGENT_VERSION,
  };
  if (e.MESH_METRICS_PORT > 0) config.metricsPort = e.MESH_METRICS_PORT;
  if (e.MESH_CGROUP) config.cgroup = e.MESH_CGROUP.replace(/\/+$/, '');
  if (e.MESH_BPF_OBJECT) config.bpfObject = e.MESH_BPF_OBJECT;
  if (e.MESH_API_URL) config.apiUrl = e.MESH_API_URL.replace(/\/+$/, '');
  if (e.MESH_TOKEN) config.token = e.MESH_TOKEN;
  if (e.MESH_STATE_FILE) config.stateFile = e.MESH_STATE_FILE;
  return config;
}
