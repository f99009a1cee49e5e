import fs from 'node:fs';
import os from 'node:os';
import {
  ConfigError,
  clusterEnv,
  DEFAULT_DATABASE_URL,
  DEFAULT_NATS_URL,
  intEnv,
  logLevelEnv,
  parseEnv,
  urlEnv,
} from '@meshplane/config';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { LogLevel, LogSink } from './logger';

export interface FederationPeer {
  /** The peer's cluster name (its MESH_CLUSTER). */
  name: string;
  /** JetStream domain of the peer's NATS (default: its cluster name). */
  domain: string;
}

/** What the importer needs; read and validated once at start-up. */
export interface ImporterConfig {
  cluster: string;
  databaseUrl: string;
  natsUrl: string;
  peers: FederationPeer[];
  /** Keep an unreachable peer's imports this long (Cilium's cacheTTL), then withdraw them. */
  cacheTtlMs: number;
  /** How often each peer's export stream is probed through its JetStream domain. */
  probeMs: number;
  /** A probe without an answer within this is a failed probe. */
  probeTimeoutMs: number;
  lockRetryMs: number;
  logLevel: LogLevel;
  instanceId: string;
  logSink?: LogSink;
}

const DURATION = /^(\d+)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** `500ms`, `30s`, `5m`, `1h` (as Cilium's cacheTTL); a bare number is seconds. */
export function parseDuration(value: string): number | undefined {
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1_000;
  const m = DURATION.exec(v);
  return m ? Number(m[1]) * UNIT_MS[m[2]!]! : undefined;
}

const durationEnv = (name: string, minMs: number) =>
  z.string().transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined || ms < minMs) {
      ctx.addIssue({
        code: 'custom',
        message: `${name} must be a duration such as 500ms, 30s or 5m (at least ${minMs}ms)`,
      });
      return z.NEVER;
    }
    return ms;
  });

const label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const PeerSchema = z.strictObject({
  name: z.string().regex(label, 'must be a DNS-1123 label (the peer cluster name)').max(63),
  domain: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,63}$/, 'must be a JetStream domain (letters, digits, - or _)')
    .optional(),
});

const FileSchema = z.strictObject({
  cluster: z.string().optional(),
  cacheTTL: z.union([z.string(), z.number()]).optional(),
  peers: z.array(PeerSchema),
});

const EnvSchema = z.object({
  MESH_CLUSTER: clusterEnv,
  DATABASE_URL: urlEnv('DATABASE_URL', ['postgres:', 'postgresql:']).default(DEFAULT_DATABASE_URL),
  NATS_URL: urlEnv('NATS_URL', ['nats:', 'tls:']).default(DEFAULT_NATS_URL),
  MESH_FEDERATION_PEERS: z.string().optional(),
  MESH_FEDERATION_FILE: z.string().optional(),
  MESH_FEDERATION_CACHE_TTL: durationEnv('MESH_FEDERATION_CACHE_TTL', 100).optional(),
  MESH_FEDERATION_PROBE_MS: intEnv('MESH_FEDERATION_PROBE_MS', 50, 600_000).default(1000),
  MESH_FEDERATION_PROBE_TIMEOUT_MS: intEnv('MESH_FEDERATION_PROBE_TIMEOUT_MS', 50, 600_000).default(2000),
  MESH_IMPORTER_LOCK_RETRY_MS: intEnv('MESH_IMPORTER_LOCK_RETRY_MS', 10, 60_000).default(500),
  MESH_LOG_LEVEL: logLevelEnv,
  MESH_IMPORTER_INSTANCE: z.string().min(1).max(128).optional(),
});

/** Default cacheTTL, as in Cilium ClusterMesh's cacheTTL for an unreachable cluster. */
export const DEFAULT_CACHE_TTL_MS = 5 * 60_000;

/**
 * `east,north=north-js`: peer names, each optionally `=<jetstream domain>`. Errors name the entry.
 */
export function parsePeerList(value: string, source = 'MESH_FEDERATION_PEERS'): FederationPeer[] {
  const entries = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return entries.map((entry, i) => {
    const [name = '', domain, extra] = entry.split('=').map((s) => s.trim());
    const r = PeerSchema.safeParse(domain === undefined ? { name } : { name, domain });
    if (extra !== undefined || !r.success) {
      const why = r.success ? 'use <name> or <name>=<domain>' : r.error.issues[0]!.message;
      const field = r.success || r.error.issues[0]!.path[0] !== 'domain' ? 'name' : 'domain';
      throw new ConfigError([`${source}[${i}].${field}: ${JSON.stringify(entry)} ${why}`]);
    }
    return { name: r.data.name, domain: r.data.domain ?? r.data.name };
  });
}

export interface PeersFile {
  peers: FederationPeer[];
  cacheTtlMs?: number;
}

/** Parses the YAML peers file; every error names the file and the field path. */
export function parsePeersFile(text: string, file: string, cluster: string): PeersFile {
  const where = `MESH_FEDERATION_FILE ${file}`;
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError([`${where}: not valid YAML: ${(err as Error).message.split('\n')[0]}`]);
  }
  const r = FileSchema.safeParse(raw ?? {});
  if (!r.success) {
    throw new ConfigError(
      r.error.issues.map((i) => `${where}: ${i.path.map(String).join('.') || '(root)'}: ${i.message}`),
    );
  }
  if (r.data.cluster !== undefined && r.data.cluster !== cluster) {
    throw new ConfigError([
      `${where}: cluster: the file is for cluster ${JSON.stringify(r.data.cluster)} but MESH_CLUSTER is ${JSON.stringify(cluster)}`,
    ]);
  }
  const out: PeersFile = { peers: r.data.peers.map((p) => ({ name: p.name, domain: p.domain ?? p.name })) };
  if (r.data.cacheTTL !== undefined) {
    const ms = parseDuration(String(r.data.cacheTTL));
    if (ms === undefined || ms < 100) {
      throw new ConfigError([`${where}: cacheTTL: must be a duration such as 30s or 5m (at least 100ms)`]);
    }
    out.cacheTtlMs = ms;
  }
  return out;
}

function checkPeers(peers: FederationPeer[], cluster: string, source: string): void {
  const seen = new Set<string>();
  peers.forEach((p, i) => {
    if (p.name === cluster) {
      throw new ConfigError([`${source}[${i}].name: ${p.name} is this cluster (MESH_CLUSTER), not a peer`]);
    }
    if (seen.has(p.name)) throw new ConfigError([`${source}[${i}].name: peer ${p.name} is listed twice`]);
    seen.add(p.name);
  });
  if (peers.length === 0) throw new ConfigError([`${source}: no peers configured`]);
}

/**
 * Reads the environment (and the peers file it names) once. Peers come from exactly one place:
 * MESH_FEDERATION_PEERS or MESH_FEDERATION_FILE.
 */
export function loadImporterConfig(
  env: NodeJS.ProcessEnv = process.env,
  readFile: (path: string) => string = (p) => fs.readFileSync(p, 'utf8'),
): ImporterConfig {
  const e = parseEnv(EnvSchema, env);
  let peers: FederationPeer[];
  let fileTtl: number | undefined;
  let source: string;
  if (e.MESH_FEDERATION_PEERS !== undefined && e.MESH_FEDERATION_FILE !== undefined) {
    throw new ConfigError([
      'MESH_FEDERATION_PEERS and MESH_FEDERATION_FILE: set only one (peers live in one place)',
    ]);
  } else if (e.MESH_FEDERATION_FILE !== undefined) {
    let text: string;
    try {
      text = readFile(e.MESH_FEDERATION_FILE);
    } catch (err) {
      throw new ConfigError([`MESH_FEDERATION_FILE ${e.MESH_FEDERATION_FILE}: ${(err as Error).message}`]);
    }
    const f = parsePeersFile(text, e.MESH_FEDERATION_FILE, e.MESH_CLUSTER);
    peers = f.peers;
    fileTtl = f.cacheTtlMs;
    source = `MESH_FEDERATION_FILE ${e.MESH_FEDERATION_FILE}: peers`;
  } else if (e.MESH_FEDERATION_PEERS !== undefined) {
    peers = parsePeerList(e.MESH_FEDERATION_PEERS);
    source = 'MESH_FEDERATION_PEERS';
  } else {
    throw new ConfigError(['MESH_FEDERATION_PEERS or MESH_FEDERATION_FILE: one of them must name the peers']);
  }
  checkPeers(peers, e.MESH_CLUSTER, source);
  const config: ImporterConfig = {
    cluster: e.MESH_CLUSTER,
    databaseUrl: e.DATABASE_URL,
    natsUrl: e.NATS_URL,
    peers,
    // The environment overrides the file, as for every other setting.
    cacheTtlMs: e.MESH_FEDERATION_CACHE_TTL ?? fileTtl ?? DEFAULT_CACHE_TTL_MS,
    probeMs: e.MESH_FEDERATION_PROBE_MS,
    probeTimeoutMs: e.MESH_FEDERATION_PROBE_TIMEOUT_MS,
    lockRetryMs: e.MESH_IMPORTER_LOCK_RETRY_MS,
    logLevel: e.MESH_LOG_LEVEL,
    instanceId: e.MESH_IMPORTER_INSTANCE ?? `${os.hostname()}/${process.pid}`,
  };
  return config;
}

export { ConfigError };
