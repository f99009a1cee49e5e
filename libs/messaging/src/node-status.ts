import type { JetStreamClient } from '@nats-io/jetstream';
import { Bucket, type KV, Kvm } from '@nats-io/kv';
import { z } from 'zod';
import { nodeStatusKey, statusBucket } from './names';

/**
 * What an agent reports about itself, one KV entry per node (key = node name), rewritten on every
 * apply and on each heartbeat. SYNCED / STALE / OFFLINE are *not* stored: they depend on the head
 * revision and the clock of whoever reads, so the API derives them from these facts.
 */
export interface NodeStatus {
  node: string;
  cluster: string;
  /** Last revision whose state the node's maps hold (0 = nothing applied yet). */
  appliedRevision: number;
  appliedAt: Date | null;
  /** Why the last apply failed; null once an apply succeeds again. */
  lastError: string | null;
  applyDurationMs: number | null;
  /** Map operations of the last apply. */
  ops: number;
  agentVersion: string;
  heartbeatAt: Date;
  /** The agent's own phase (what it is doing), as opposed to the derived sync state. */
  state?: AgentState;
  /** The revision that failed to apply, with lastError. */
  failedRevision?: number | null;
  lastErrorAt?: Date | null;
  /**
   * Recent applies, newest last (bounded by the agent, e.g. 64). Coalesced revisions share one
   * entry, so "when did the node apply R" is the first entry with revision >= R; this is what
   * `GET /v1/revisions/:rev/propagation` reads for the applied time.
   */
  recentApplies?: AppliedRecord[];
  /**
   * The agent's data-plane facts (backend kind, pin dir, programs attached, full-pass repairs),
   * opaque here: the agent writes them as the `dataplane` extra field, readers pass them on.
   */
  dataplane?: Record<string, unknown>;
}

export type AgentState = 'STARTING' | 'BOOTSTRAPPING' | 'APPLYING' | 'READY' | 'ERROR' | 'STOPPING';

export interface AppliedRecord {
  revision: number;
  appliedAt: Date;
  durationMs: number;
  /** When the agent received this revision from the stream; only set when the apply was for it alone. */
  receivedAt?: Date;
}

export const NODE_STATUS_FORMAT_VERSION = 1;

const isoDate = z.iso.datetime({ offset: true }).transform((s) => new Date(s));
const rev = z.number().int().nonnegative();
/** Milliseconds since the epoch that make a valid Date (ECMAScript's range). */
const epochMs = z.number().int().min(-8.64e15).max(8.64e15);

const WireSchema = z.object({
  v: z.literal(NODE_STATUS_FORMAT_VERSION),
  node: z.string().min(1),
  cluster: z.string().min(1),
  appliedRevision: rev,
  appliedAt: isoDate.nullable(),
  lastError: z.string().nullable(),
  applyDurationMs: z.number().nonnegative().nullable(),
  ops: z.number().int().nonnegative(),
  agentVersion: z.string(),
  heartbeatAt: isoDate,
  state: z.enum(['STARTING', 'BOOTSTRAPPING', 'APPLYING', 'READY', 'ERROR', 'STOPPING']).optional(),
  failedRevision: rev.nullable().optional(),
  lastErrorAt: isoDate.nullable().optional(),
  /** The history as agents before the compact form wrote it (still read). */
  recentApplies: z
    .array(
      z.object({
        revision: rev,
        appliedAt: isoDate,
        durationMs: z.number().nonnegative(),
        receivedAt: isoDate.optional(),
      }),
    )
    .optional(),
  /** The history, compact (see appliedToJson). */
  applies: z
    .array(
      z.union([
        z.tuple([rev, epochMs, z.number().nonnegative()]),
        z
          .tuple([rev, epochMs, z.number().nonnegative(), z.number().int()])
          .refine(([, applied, , before]) => Math.abs(applied - before) <= 8.64e15, {
            message: 'receive time out of range',
          }),
      ]),
    )
    .optional(),
  dataplane: z.record(z.string(), z.unknown()).optional(),
});

export class NodeStatusCodecError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'NodeStatusCodecError';
  }
}

const iso = (d: Date, field: string): string => {
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) {
    throw new NodeStatusCodecError(`node status: ${field} is not a valid Date`);
  }
  return d.toISOString();
};
const isoOrNull = (d: Date | null | undefined, field: string) => (d ? iso(d, field) : null);

/**
 * One history record's wire text: `[revision, appliedAt ms, durationMs]`, plus
 * `appliedAt - receivedAt` in ms when the receive time is known. The history is most of a status
 * value, rewritten by every agent after applies and on every heartbeat; as objects with ISO dates
 * a record was ~110 bytes, as this ~25, and encoding it needs no date formatting.
 */
function appliedToJson(a: AppliedRecord): string {
  const applied = validMs(a.appliedAt, 'appliedAt');
  const before = a.receivedAt === undefined ? Number.NaN : applied - validMs(a.receivedAt, 'receivedAt');
  return compactJson(a.revision, applied, a.durationMs, before);
}

/** The wire text of one record from its numbers (`before` NaN: receive time unknown). */
function compactJson(revision: number, applied: number, durationMs: number, before: number): string {
  return JSON.stringify(
    Number.isNaN(before) ? [revision, applied, durationMs] : [revision, applied, durationMs, before],
  );
}

type CompactApplied = [number, number, number] | [number, number, number, number];

function appliedFromWire([revision, applied, durationMs, receivedBefore]: CompactApplied): AppliedRecord {
  const rec: AppliedRecord = { revision, appliedAt: new Date(applied), durationMs };
  if (receivedBefore !== undefined) rec.receivedAt = new Date(applied - receivedBefore);
  return rec;
}

/**
 * A node's recent applies (oldest first, at most `limit`), as numbers in a ring: an agent adds one
 * per apply, and as objects with Dates and their wire text each record was ~250 bytes that lived
 * `limit` applies (promoted, then garbage in old space: a simulation worker's 50 agents made it a
 * large share of every scavenge's copying). The wire text is built when a write asks for it
 * (writes are coalesced, about one a second) and kept until the next push.
 */
export class AppliedHistory {
  // Per record: revision, appliedAt ms, durationMs, appliedAt - receivedAt ms (NaN: unknown).
  private readonly ring: Float64Array;
  private start = 0;
  private count = 0;
  private joined: string | undefined = '';

  constructor(readonly limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1)
      throw new RangeError(`history limit must be >= 1, got ${limit}`);
    this.ring = new Float64Array(limit * 4);
  }

  get size(): number {
    return this.count;
  }

  /** The records, oldest first (new objects). */
  records(): AppliedRecord[] {
    const out: AppliedRecord[] = [];
    this.forEach((revision, applied, durationMs, before) => {
      const rec: AppliedRecord = { revision, appliedAt: new Date(applied), durationMs };
      if (!Number.isNaN(before)) rec.receivedAt = new Date(applied - before);
      out.push(rec);
    });
    return out;
  }

  push(rec: AppliedRecord): void {
    const received = rec.receivedAt === undefined ? undefined : validMs(rec.receivedAt, 'receivedAt');
    this.pushMs(rec.revision, validMs(rec.appliedAt, 'appliedAt'), rec.durationMs, received);
  }

  /** push() without Dates: what the agent calls on every apply. */
  pushMs(revision: number, appliedAtMs: number, durationMs: number, receivedAtMs?: number): void {
    const applied = validMs(appliedAtMs, 'appliedAt');
    const before = receivedAtMs === undefined ? Number.NaN : applied - validMs(receivedAtMs, 'receivedAt');
    const slot = ((this.start + this.count) % this.limit) * 4;
    if (this.count === this.limit) this.start = (this.start + 1) % this.limit;
    else this.count++;
    this.ring[slot] = revision;
    this.ring[slot + 1] = applied;
    this.ring[slot + 2] = durationMs;
    this.ring[slot + 3] = before;
    this.joined = undefined;
  }

  /** The history as JSON text (the wire's `applies`, see appliedToJson). */
  json(): string {
    if (this.joined === undefined) {
      const texts: string[] = [];
      this.forEach((revision, applied, durationMs, before) => {
        texts.push(compactJson(revision, applied, durationMs, before));
      });
      this.joined = texts.join(',');
    }
    return `[${this.joined}]`;
  }

  private forEach(fn: (revision: number, applied: number, durationMs: number, before: number) => void): void {
    for (let i = 0; i < this.count; i++) {
      const at = ((this.start + i) % this.limit) * 4;
      fn(this.ring[at]!, this.ring[at + 1]!, this.ring[at + 2]!, this.ring[at + 3]!);
    }
  }
}

/** A Date's (or epoch ms') time, which a Date can hold; NodeStatusCodecError otherwise. */
function validMs(d: Date | number, field: string): number {
  const ms = d instanceof Date ? d.getTime() : typeof d === 'number' ? d : Number.NaN;
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15)
    throw new NodeStatusCodecError(`node status: recentApplies.${field} is not a valid Date`);
  return ms;
}

/**
 * The KV value of a status. `extra` fields are written beside the NodeStatus fields (never
 * replacing one); decodeNodeStatus keeps `dataplane` and ignores the rest.
 */
export function encodeNodeStatus(
  s: NodeStatus,
  extra?: Record<string, unknown>,
  /** `recentApplies` already encoded (AppliedHistory.json()); replaces s.recentApplies. */
  history?: string,
): Uint8Array {
  const wire: Record<string, unknown> = {
    v: NODE_STATUS_FORMAT_VERSION,
    node: s.node,
    cluster: s.cluster,
    appliedRevision: s.appliedRevision,
    appliedAt: isoOrNull(s.appliedAt, 'appliedAt'),
    lastError: s.lastError,
    applyDurationMs: s.applyDurationMs,
    ops: s.ops,
    agentVersion: s.agentVersion,
    heartbeatAt: iso(s.heartbeatAt, 'heartbeatAt'),
  };
  if (s.state !== undefined) wire.state = s.state;
  if (s.failedRevision !== undefined) wire.failedRevision = s.failedRevision;
  if (s.lastErrorAt !== undefined) wire.lastErrorAt = isoOrNull(s.lastErrorAt, 'lastErrorAt');
  if (s.dataplane !== undefined) wire.dataplane = s.dataplane;
  if (extra)
    for (const [k, v] of Object.entries(extra))
      if (!(k in wire) && k !== 'recentApplies' && k !== 'applies') wire[k] = v;
  let json = JSON.stringify(wire);
  // The history goes last, spliced in as text (wire always has fields, so the object text ends
  // in "}" after at least one member).
  const recent =
    history ?? (s.recentApplies ? `[${s.recentApplies.map(appliedToJson).join(',')}]` : undefined);
  if (recent !== undefined) json = `${json.slice(0, -1)},"applies":${recent}}`;
  return Buffer.from(json, 'utf8');
}

export function decodeNodeStatus(bytes: Uint8Array): NodeStatus {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (err) {
    throw new NodeStatusCodecError(`node status is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const r = WireSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new NodeStatusCodecError(
      `invalid node status at ${issue.path.join('.') || '(root)'}: ${issue.message}`,
    );
  }
  const { v: _v, applies, ...status } = r.data;
  // Compact history first (this agent's form); an older agent's objects otherwise.
  if (applies !== undefined) status.recentApplies = applies.map(appliedFromWire);
  return status;
}

export interface StatusBucketOptions {
  /** Override the bucket name (default `statusBucket(cluster)`). */
  name?: string;
  /**
   * Drop a node's entry after this long without a write; default 0 (keep). The API reports a node
   * without a recent heartbeat as OFFLINE, which is more useful than having it vanish.
   */
  ttlMs?: number;
  /** Largest status value; default 64 KiB (recentApplies is bounded by the agent). */
  maxValueSize?: number;
}

/**
 * Creates the status bucket (KV, history 1: only the latest status per node matters, the
 * heartbeat rewrites it every few seconds), or opens it if it exists. Idempotent and race-safe.
 */
export async function provisionStatusBucket(
  js: JetStreamClient,
  cluster: string,
  opts: StatusBucketOptions = {},
): Promise<KV> {
  return new Kvm(js).create(opts.name ?? statusBucket(cluster), {
    history: 1,
    storage: 'file',
    maxValueSize: opts.maxValueSize ?? 64 * 1024,
    ...(opts.ttlMs ? { ttl: opts.ttlMs } : {}),
    description: `Meshplane node status of cluster ${cluster}`,
  });
}

/** Opens the bucket without creating it (readers such as the API). */
export function openStatusBucket(js: JetStreamClient, cluster: string, name?: string): Promise<KV> {
  return new Kvm(js).open(name ?? statusBucket(cluster));
}

export function putNodeStatus(kv: KV, status: NodeStatus): Promise<number> {
  return kv.put(nodeStatusKey(status.node), encodeNodeStatus(status));
}

/** Every node's latest status; entries that do not decode are passed to `onInvalid` and skipped. */
export async function readNodeStatuses(
  kv: KV,
  onInvalid?: (key: string, err: Error) => void,
): Promise<NodeStatus[]> {
  const out: NodeStatus[] = [];
  for (const key of await statusKeys(kv)) {
    const entry = await kv.get(key);
    if (entry?.operation !== 'PUT') continue;
    try {
      out.push(decodeNodeStatus(entry.value));
    } catch (err) {
      onInvalid?.(key, err as Error);
    }
  }
  return out.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
}

/**
 * The keys of a status bucket. kv.keys() runs a consumer until nothing is
 * pending, which with agents heartbeating can repeat keys, stall for seconds
 * or never end; the stream's per-subject counts answer in one request.
 */
export async function statusKeys(kv: KV): Promise<string[]> {
  if (kv instanceof Bucket) {
    const prefix = `$KV.${kv.bucket}.`;
    const info = await kv.jsm.streams.info(kv.bucketName(), { subjects_filter: `${prefix}>` });
    return Object.keys(info.state.subjects ?? {})
      .filter((s) => s.startsWith(prefix))
      .map((s) => s.slice(prefix.length));
  }
  const keys = new Set<string>();
  for await (const key of await kv.keys()) keys.add(key);
  return [...keys];
}
