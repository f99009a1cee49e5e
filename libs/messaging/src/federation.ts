import type { Resource, SkippedImport } from '@meshplane/domain';
import {
  DiscardPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type PubAck,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
  type StreamSource,
} from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { headers, type MsgHdrs, nanos } from '@nats-io/transport-node';
import { z } from 'zod';
import { assertClusterName } from './names';
import { statusKeys } from './node-status';
import { MESH_CLUSTER_HEADER, MESH_REVISION_HEADER } from './publish';
import { DUPLICATE_WINDOW_MS, streamInfoOrUndefined } from './stream';
import { extractTraceContext, injectTraceContext, type TraceContext } from './trace-headers';

/**
 * Federation over NATS: each cluster publishes the exported part of its state to its export
 * stream; each importing cluster has one import stream that SOURCES every peer's export stream
 * across JetStream domains (domain = cluster name) over the leafnode connections.
 */

const token = (cluster: string) => {
  assertClusterName(cluster);
  return cluster.toUpperCase().replace(/[^A-Z0-9]/g, '_');
};

/** `MESH_EXPORT_<CLUSTER>`: one message per change of the exported view, sequence == export seq. */
export const exportStreamName = (cluster: string) => `MESH_EXPORT_${token(cluster)}`;
/** `mesh.<cluster>.export`; sourced messages keep it, so it also names the origin in the import stream. */
export function exportSubject(cluster: string): string {
  assertClusterName(cluster);
  return `mesh.${cluster}.export`;
}
/** `MESH_IMPORT_<CLUSTER>`: the importing cluster's stream sourcing its peers' export streams. */
export const importStreamName = (cluster: string) => `MESH_IMPORT_${token(cluster)}`;
/** `mesh_federation_<cluster>`: KV bucket of link states, one key per peer. */
export function federationBucket(cluster: string): string {
  assertClusterName(cluster);
  return `mesh_federation_${cluster}`;
}
export const exportMsgId = (cluster: string, seq: number) => `${cluster}:export:${seq}`;

export const MESH_EXPORT_SEQ_HEADER = 'Mesh-Export-Seq';

/** The full exported view of `cluster` after its revision `revision`, the `seq`-th distinct one. */
export interface ExportMessage {
  cluster: string;
  seq: number;
  revision: number;
  resources: Resource[];
}

export const EXPORT_FORMAT_VERSION = 1;

const ExportWire = z.object({
  v: z.literal(EXPORT_FORMAT_VERSION),
  cluster: z.string().min(1),
  seq: z.number().int().positive(),
  revision: z.number().int().nonnegative(),
  resources: z.array(
    z.object({
      kind: z.string().min(1),
      namespace: z.string().min(1),
      name: z.string().min(1),
      spec: z.record(z.string(), z.unknown()),
    }),
  ),
});

export class ExportCodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExportCodecError';
  }
}

export function encodeExport(m: ExportMessage): Uint8Array {
  const resources = m.resources.map(({ kind, namespace, name, spec }) => ({ kind, namespace, name, spec }));
  return Buffer.from(JSON.stringify({ v: EXPORT_FORMAT_VERSION, ...m, resources }), 'utf8');
}

export function decodeExport(bytes: Uint8Array): ExportMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (err) {
    throw new ExportCodecError(`export message is not JSON: ${(err as Error).message}`);
  }
  const r = ExportWire.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new ExportCodecError(
      `invalid export message at ${issue.path.join('.') || '(root)'}: ${issue.message}`,
    );
  }
  const { v: _v, ...m } = r.data;
  return m;
}

export function exportHeaders(m: ExportMessage, trace?: Partial<TraceContext>): MsgHdrs {
  const h = headers();
  h.set(MESH_EXPORT_SEQ_HEADER, String(m.seq));
  h.set(MESH_REVISION_HEADER, String(m.revision));
  h.set(MESH_CLUSTER_HEADER, m.cluster);
  injectTraceContext(h, trace);
  return h;
}

export interface ExportHeaders {
  seq: number | undefined;
  revision: number | undefined;
  cluster: string | undefined;
  trace: TraceContext | undefined;
}

export function readExportHeaders(h: MsgHdrs | undefined): ExportHeaders {
  const num = (k: string) => {
    const v = h?.has(k) ? h.get(k) : '';
    return /^\d+$/.test(v) ? Number(v) : undefined;
  };
  return {
    seq: num(MESH_EXPORT_SEQ_HEADER),
    revision: num(MESH_REVISION_HEADER),
    cluster: h?.has(MESH_CLUSTER_HEADER) ? h.get(MESH_CLUSTER_HEADER) : undefined,
    trace: extractTraceContext(h),
  };
}

/**
 * Publishes export `m.seq` so that stream sequence == export seq (importers prove gap-freedom by
 * it): the msg id makes a retry a no-op, and one relay leader publishes at a time. No
 * Nats-Expected-* headers: sourcing copies headers, and the importing stream would then check
 * them against itself and refuse the message ("expected stream does not match", nats-server 2.9).
 * A sequence other than `seq` is reported, and the relay re-reads the stream's tail.
 */
export async function publishExport(
  js: JetStreamClient,
  m: ExportMessage,
  opts: { trace?: Partial<TraceContext>; timeoutMs?: number } = {},
): Promise<PubAck> {
  const ack = await js.publish(exportSubject(m.cluster), encodeExport(m), {
    msgID: exportMsgId(m.cluster, m.seq),
    headers: exportHeaders(m, opts.trace),
    ...(opts.timeoutMs ? { timeout: opts.timeoutMs } : {}),
  });
  if (ack.seq !== m.seq) {
    throw new Error(`stream ${ack.stream} stored export ${m.seq} at sequence ${ack.seq}`);
  }
  return ack;
}

const baseStream = (): Partial<StreamConfig> => ({
  storage: StorageType.File,
  retention: RetentionPolicy.Limits,
  discard: DiscardPolicy.Old,
  duplicate_window: nanos(DUPLICATE_WINDOW_MS),
  num_replicas: 1,
  allow_direct: true,
});

/** Creates the export stream if missing (idempotent); returns its last sequence (0 when empty). */
export async function provisionExportStream(jsm: JetStreamManager, cluster: string): Promise<number> {
  const name = exportStreamName(cluster);
  const info =
    (await streamInfoOrUndefined(jsm, name)) ??
    (await jsm.streams
      .add({
        ...baseStream(),
        name,
        subjects: [exportSubject(cluster)],
        description: `Meshplane exports of cluster ${cluster}: one message per change of the exported view`,
        max_msgs: -1,
      })
      .catch(async (err: unknown) => {
        // A concurrent create (another relay) wins the race: use its stream.
        const raced = await streamInfoOrUndefined(jsm, name);
        if (!raced) throw err;
        return raced;
      }));
  return info.state.last_seq;
}

export interface FederationPeerRef {
  name: string;
  /** JetStream domain of the peer's NATS; defaults to its cluster name. */
  domain?: string;
}

/**
 * `mesh.deliver.<cluster>.<peer>`: prefix of the subjects `peer`'s sourcing consumer pushes to
 * for `cluster`'s import stream. NATS's default (`$JS.S.…`) is the same for every peer, which a
 * full mesh cannot route: there each peer sits behind its own link account, and the JetStream
 * account imports one subject space per peer (see infra/federation/mesh-*.conf).
 */
export function importDeliverPrefix(cluster: string, peer: string): string {
  assertClusterName(cluster);
  assertClusterName(peer);
  return `mesh.deliver.${cluster}.${peer}`;
}

/** `$JS.FC.<peer's export stream>`: flow-control replies of `peer`'s sourcing consumers. */
export const importFlowControlPrefix = (peer: string) => `$JS.FC.${exportStreamName(peer)}`;

/** Sources of `cluster`'s import stream: each peer's export stream through its JetStream domain. */
export function importSources(cluster: string, peers: readonly FederationPeerRef[]): StreamSource[] {
  return peers.map((p) => {
    const domain = p.domain ?? p.name;
    return {
      name: exportStreamName(p.name),
      filter_subject: exportSubject(p.name),
      external: { api: `$JS.${domain}.API`, deliver: importDeliverPrefix(cluster, p.name) },
    };
  });
}

/**
 * Creates or updates `cluster`'s import stream so that it sources exactly `peers`. Sourcing is
 * the server's job: it keeps retrying a peer that is unreachable and resumes where it stopped.
 */
export async function provisionImportStream(
  jsm: JetStreamManager,
  cluster: string,
  peers: readonly FederationPeerRef[],
  opts: { maxMsgsPerSubject?: number } = {},
): Promise<'created' | 'updated' | 'unchanged'> {
  const name = importStreamName(cluster);
  const sources = importSources(cluster, peers);
  // The deliver prefix is part of the key so a stream made with NATS's default one is updated
  // (nats-server 2.9.10 then re-creates the sourcing consumers with the new prefix).
  const key = (s: StreamSource[] | undefined) =>
    JSON.stringify((s ?? []).map((x) => [x.name, x.external?.api ?? '', x.external?.deliver ?? '']).sort());
  const have = await streamInfoOrUndefined(jsm, name);
  const want: Partial<StreamConfig> & { name: string } = {
    ...baseStream(),
    name,
    subjects: [],
    sources,
    description: `Meshplane imports of cluster ${cluster}: sources the export streams of its peers`,
    max_msgs_per_subject: opts.maxMsgsPerSubject ?? 100_000,
  };
  if (!have) {
    await jsm.streams.add(want);
    return 'created';
  }
  if (key(have.config.sources) === key(sources)) return 'unchanged';
  await jsm.streams.update(name, { ...have.config, sources });
  return 'updated';
}

/** One peer's link as the importing cluster's importer sees it (KV value, key = peer). */
export interface FederationLinkStatus {
  cluster: string;
  peer: string;
  state: 'connected' | 'disconnected' | 'unknown';
  /** When `state` last changed. */
  since: string;
  /** The peer's imported backends were withdrawn after the cache TTL (until it reconnects). */
  withdrawn: boolean;
  lastImportedRevision: number;
  lastImportedSeq: number;
  /** Local revision of the last import change set. */
  lastImportRevision: number | null;
  /** The peer's last export seq as last seen (probe or message). */
  peerSeq: number;
  /** Export messages the peer has that this cluster has not applied yet. */
  lag: number;
  lastError: string | null;
  /**
   * What the last import of the peer's view left out (a VIP used outside its global service),
   * at most MAX_LINK_SKIPPED entries; imported without operator action once the clash is gone.
   */
  skipped: SkippedImport[];
  /** How many resources were skipped (may exceed `skipped.length`). */
  skippedCount: number;
  updatedAt: string;
}

/** Entries of `skipped` a link status carries (the import change set's metadata has them all). */
export const MAX_LINK_SKIPPED = 50;

const RefWire = z.object({ kind: z.string(), namespace: z.string(), name: z.string() });

const SkippedWire = RefWire.extend({
  reason: z.enum(['vip-conflict', 'selected-only-by-skipped']),
  vip: z.string().optional(),
  holder: RefWire.extend({ origin: z.string().optional() }).optional(),
  message: z.string(),
});

const LinkWire = z.object({
  cluster: z.string(),
  peer: z.string(),
  state: z.enum(['connected', 'disconnected', 'unknown']),
  since: z.string(),
  withdrawn: z.boolean(),
  lastImportedRevision: z.number().int().nonnegative(),
  lastImportedSeq: z.number().int().nonnegative(),
  lastImportRevision: z.number().int().nullable(),
  peerSeq: z.number().int().nonnegative(),
  lag: z.number().int(),
  lastError: z.string().nullable(),
  // Absent in values written before skips were reported.
  skipped: z.array(SkippedWire).default([]),
  skippedCount: z.number().int().nonnegative().default(0),
  updatedAt: z.string(),
});

export function encodeLinkStatus(s: FederationLinkStatus): Uint8Array {
  return Buffer.from(JSON.stringify(s), 'utf8');
}

export function decodeLinkStatus(bytes: Uint8Array): FederationLinkStatus {
  const raw = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  return LinkWire.parse(raw);
}

export function provisionFederationBucket(js: JetStreamClient, cluster: string): Promise<KV> {
  return new Kvm(js).create(federationBucket(cluster), {
    history: 1,
    storage: 'file',
    description: `Meshplane federation link states of cluster ${cluster}`,
  });
}

export function openFederationBucket(js: JetStreamClient, cluster: string): Promise<KV> {
  return new Kvm(js).open(federationBucket(cluster));
}

/** Every peer's link status, sorted by peer; undecodable entries go to `onInvalid`. */
export async function readLinkStatuses(
  kv: KV,
  onInvalid?: (key: string, err: Error) => void,
): Promise<FederationLinkStatus[]> {
  const out: FederationLinkStatus[] = [];
  for (const key of await statusKeys(kv)) {
    const entry = await kv.get(key);
    if (entry?.operation !== 'PUT') continue;
    try {
      out.push(decodeLinkStatus(entry.value));
    } catch (err) {
      onInvalid?.(key, err as Error);
    }
  }
  return out.sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0));
}
