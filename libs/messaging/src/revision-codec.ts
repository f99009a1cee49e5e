import { gunzipSync, gzipSync } from 'node:zlib';
import type { CommittedEvent } from '@meshplane/domain';
import type { ChangeSet } from '@meshplane/event-store';

/**
 * The wire format of one revision message: the whole change set as JSON, Dates as ISO strings,
 * plus `v` (the format version) so that agents can refuse a format they do not know instead of
 * misreading it. Large bodies are gzip-compressed; the gzip magic bytes make the payload
 * self-describing, so `decodeRevision(bytes)` needs no header.
 */
export const REVISION_FORMAT_VERSION = 1;

/**
 * Bodies above this size are compressed. A bulk apply of thousands of services is one change set,
 * and NATS rejects messages above `max_payload` (1 MiB by default); JSON specs shrink ~10x.
 */
export const COMPRESS_ABOVE_BYTES = 64 * 1024;

const GZIP_MAGIC_0 = 0x1f;
const GZIP_MAGIC_1 = 0x8b;

export class RevisionCodecError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'RevisionCodecError';
  }
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * Events are checked by hand: a bulk change set holds tens of thousands of them, and a schema
 * library that rebuilds every object costs ~10 us each (0.3 s for 30k); this costs ~0.1 us.
 * Returns the field path and reason of the first problem, or undefined.
 */
function checkEvents(events: unknown): string | undefined {
  if (!Array.isArray(events)) return 'events: must be an array';
  for (let i = 0; i < events.length; i++) {
    const e = events[i] as Record<string, unknown>;
    const at = `events.${i}`;
    if (!isPlainObject(e)) return `${at}: must be an object`;
    if (!isCount(e.revision)) return `${at}.revision: must be a non-negative integer`;
    if (!isCount(e.seq)) return `${at}.seq: must be a non-negative integer`;
    for (const k of ['kind', 'namespace', 'name'] as const) {
      if (typeof e[k] !== 'string') return `${at}.${k}: must be a string`;
    }
    if (e.op !== 'put' && e.op !== 'delete') return `${at}.op: must be "put" or "delete"`;
    if (e.spec !== undefined && !isPlainObject(e.spec)) return `${at}.spec: must be a JSON object`;
    if (e.prevVersion !== null && !isCount(e.prevVersion))
      return `${at}.prevVersion: must be null or a revision`;
    if (e.origin !== undefined && typeof e.origin !== 'string') return `${at}.origin: must be a string`;
  }
  return undefined;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isNullableString = (v: unknown): v is string | null => v === null || typeof v === 'string';

// RFC 3339 with an offset, as Date#toISOString writes it (and any other offset or precision).
const CREATED_AT_PROBLEM = 'createdAt: must be an ISO 8601 date-time with an offset';
const ISO_DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;

/**
 * The change set's own fields, checked by hand like the events: every agent decodes every
 * revision, and a schema library costs ~20 us per message where this costs well under 1 us.
 * Specs and metadata pass through untouched (the reducer owns their validation). Returns the
 * field path and reason of the first problem, or undefined.
 */
function checkHeader(w: Record<string, unknown>): string | undefined {
  if (!Number.isSafeInteger(w.revision) || (w.revision as number) < 1)
    return 'revision: must be a positive integer';
  for (const k of ['changeId', 'cluster', 'actor', 'reason', 'prevHash', 'hash'] as const)
    if (!isString(w[k])) return `${k}: must be a string`;
  for (const k of ['requestId', 'idempotencyKey', 'traceContext'] as const)
    if (!isNullableString(w[k])) return `${k}: must be a string or null`;
  if (w.restoredFromRevision !== null && !isCount(w.restoredFromRevision))
    return 'restoredFromRevision: must be null or a revision';
  if (!isPlainObject(w.metadata)) return 'metadata: must be a JSON object';
  // Whether it is a real date is checked where it is parsed, once (decodeRevision).
  if (!isString(w.createdAt) || !ISO_DATETIME.test(w.createdAt)) return CREATED_AT_PROBLEM;
  if (!isCount(w.eventCount)) return 'eventCount: must be a non-negative integer';
  return undefined;
}

/** Only the fields of a ChangeSet are written: a caller's extra properties never leak onto the wire. */
function toWire(cs: ChangeSet): Record<string, unknown> {
  if (!(cs.createdAt instanceof Date) || Number.isNaN(cs.createdAt.getTime())) {
    throw new RevisionCodecError(`revision ${cs.revision}: createdAt is not a valid Date`);
  }
  return {
    v: REVISION_FORMAT_VERSION,
    revision: cs.revision,
    changeId: cs.changeId,
    cluster: cs.cluster,
    actor: cs.actor,
    reason: cs.reason,
    requestId: cs.requestId,
    idempotencyKey: cs.idempotencyKey,
    traceContext: cs.traceContext,
    restoredFromRevision: cs.restoredFromRevision,
    metadata: cs.metadata,
    createdAt: cs.createdAt.toISOString(),
    eventCount: cs.eventCount,
    prevHash: cs.prevHash,
    hash: cs.hash,
    events: cs.events.map(eventToWire),
  };
}

function eventToWire(e: CommittedEvent): Record<string, unknown> {
  const w: Record<string, unknown> = {
    revision: e.revision,
    seq: e.seq,
    kind: e.kind,
    namespace: e.namespace,
    name: e.name,
    op: e.op,
  };
  if (e.spec !== undefined) w.spec = e.spec;
  w.prevVersion = e.prevVersion;
  if (e.origin !== undefined) w.origin = e.origin;
  return w;
}

export interface EncodeOptions {
  /** Compress bodies larger than this many bytes; default COMPRESS_ABOVE_BYTES, Infinity disables. */
  compressAboveBytes?: number;
}

export function encodeRevision(cs: ChangeSet, opts: EncodeOptions = {}): Uint8Array {
  const json = Buffer.from(JSON.stringify(toWire(cs)), 'utf8');
  const limit = opts.compressAboveBytes ?? COMPRESS_ABOVE_BYTES;
  return json.length > limit ? gzipSync(json) : json;
}

export function isCompressedRevision(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === GZIP_MAGIC_0 && bytes[1] === GZIP_MAGIC_1;
}

/** Parses and validates one revision message; throws RevisionCodecError naming the bad field. */
export function decodeRevision(bytes: Uint8Array): ChangeSet {
  let text: string;
  let raw: unknown;
  try {
    const body = isCompressedRevision(bytes) ? gunzipSync(bytes) : bytes;
    text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
    raw = JSON.parse(text);
  } catch (err) {
    throw new RevisionCodecError(`revision message is not valid (gzipped) JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const version = isPlainObject(raw) ? raw.v : undefined;
  if (version !== REVISION_FORMAT_VERSION) {
    throw new RevisionCodecError(
      `unsupported revision format version ${JSON.stringify(version)} (this build reads ${REVISION_FORMAT_VERSION})`,
    );
  }
  const wire = raw as Record<string, unknown>;
  const createdAt = new Date(wire.createdAt as string);
  const problem =
    checkHeader(wire) ??
    (Number.isNaN(createdAt.getTime()) ? CREATED_AT_PROBLEM : undefined) ??
    checkEvents(wire.events);
  if (problem) throw new RevisionCodecError(`invalid revision message at ${problem}`);
  // Fields are taken as parsed (JSON.parse made fresh objects), and only the ChangeSet's own:
  // whatever else a newer writer adds stays off the object.
  return {
    revision: wire.revision as number,
    changeId: wire.changeId as string,
    cluster: wire.cluster as string,
    actor: wire.actor as string,
    reason: wire.reason as string,
    requestId: wire.requestId as string | null,
    idempotencyKey: wire.idempotencyKey as string | null,
    traceContext: wire.traceContext as string | null,
    restoredFromRevision: wire.restoredFromRevision as number | null,
    metadata: wire.metadata as Record<string, unknown>,
    eventCount: wire.eventCount as number,
    prevHash: wire.prevHash as string,
    hash: wire.hash as string,
    createdAt,
    events: wire.events as CommittedEvent[],
  };
}
