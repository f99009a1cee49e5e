import type { ChangeSet } from '@meshplane/event-store';
import { JetStreamApiError, type JetStreamClient, type PubAck } from '@nats-io/jetstream';
import { headers, type MsgHdrs } from '@nats-io/transport-node';
import { revisionMsgId, revisionSubject, streamName } from './names';
import { type EncodeOptions, encodeRevision } from './revision-codec';
import { extractTraceContext, injectTraceContext, type TraceContext } from './trace-headers';

export const MESH_REVISION_HEADER = 'Mesh-Revision';
export const MESH_CLUSTER_HEADER = 'Mesh-Cluster';
/** The change set's chain hash: lets a reader check a message against the log without decoding it. */
export const MESH_HASH_HEADER = 'Mesh-Hash';

export const WRONG_LAST_SEQUENCE = 10071;

export interface PublishRevisionOptions extends EncodeOptions {
  /** Override the subject / stream (tests, federation); defaults from the cluster name. */
  subject?: string;
  stream?: string;
  /** PubAck deadline; default the client's (5 s). */
  timeoutMs?: number;
  /** The server's max_payload (`nc.info.max_payload`); a larger message fails before sending. */
  maxPayload?: number;
  /** The publisher's own span, for the traceparent header; default the change set's stored context. */
  trace?: Partial<TraceContext>;
}

/**
 * A revision whose encoded (already compressed) message is larger than the server accepts. It
 * cannot be skipped (that would break sequence == revision), so it needs an operator: raise
 * `max_payload` on the NATS servers.
 */
export class RevisionTooLargeError extends Error {
  constructor(
    readonly revision: number,
    readonly bytes: number,
    readonly maxPayload: number,
  ) {
    super(
      `revision ${revision} encodes to ${bytes} bytes, above the NATS server's max_payload of ${maxPayload}; ` +
        'raise max_payload on the servers',
    );
    this.name = 'RevisionTooLargeError';
  }
}

/**
 * The trace context a change set carries: its traceparent, and a tracestate if the writer put one
 * in `metadata.tracestate` (the log stores only the traceparent as a column).
 */
export function changeSetTraceContext(cs: ChangeSet): Partial<TraceContext> | undefined {
  if (!cs.traceContext) return undefined;
  const ts = cs.metadata?.tracestate;
  return typeof ts === 'string'
    ? { traceparent: cs.traceContext, tracestate: ts }
    : { traceparent: cs.traceContext };
}

export function revisionHeaders(cluster: string, cs: ChangeSet, trace?: Partial<TraceContext>): MsgHdrs {
  const h = headers();
  h.set(MESH_REVISION_HEADER, String(cs.revision));
  h.set(MESH_CLUSTER_HEADER, cluster);
  h.set(MESH_HASH_HEADER, cs.hash);
  injectTraceContext(h, trace?.traceparent ? trace : changeSetTraceContext(cs));
  return h;
}

/**
 * Publishes one revision so that stream sequence == revision, whatever crashes and retries happen:
 * `Nats-Msg-Id = <cluster>:<revision>` makes a retry within the duplicate window a no-op
 * (`ack.duplicate`), and `expect.lastSequence = revision - 1` rejects (10071) anything out of
 * order, including a retry after the window. `expect.streamName` refuses a subject that some
 * other stream captured.
 */
export async function publishRevision(
  js: JetStreamClient,
  cluster: string,
  cs: ChangeSet,
  opts: PublishRevisionOptions = {},
): Promise<PubAck> {
  if (!Number.isInteger(cs.revision) || cs.revision < 1) {
    throw new Error(`publishRevision: revision must be a positive integer, got ${cs.revision}`);
  }
  const data = encodeRevision(cs, opts);
  if (opts.maxPayload !== undefined && data.length > opts.maxPayload) {
    throw new RevisionTooLargeError(cs.revision, data.length, opts.maxPayload);
  }
  const ack = await js.publish(opts.subject ?? revisionSubject(cluster), data, {
    msgID: revisionMsgId(cluster, cs.revision),
    headers: revisionHeaders(cluster, cs, opts.trace),
    expect: { lastSequence: cs.revision - 1, streamName: opts.stream ?? streamName(cluster) },
    ...(opts.timeoutMs ? { timeout: opts.timeoutMs } : {}),
  });
  // A duplicate ack carries the sequence the revision was first stored at; anything but the
  // revision itself means the stream was not written by these rules.
  if (ack.seq !== cs.revision) {
    throw new Error(
      `stream ${ack.stream} stored revision ${cs.revision} at sequence ${ack.seq}${ack.duplicate ? ' (duplicate)' : ''}`,
    );
  }
  return ack;
}

export function isWrongLastSequence(err: unknown): err is JetStreamApiError {
  return err instanceof JetStreamApiError && err.code === WRONG_LAST_SEQUENCE;
}

export interface RevisionHeaders {
  revision: number | undefined;
  cluster: string | undefined;
  hash: string | undefined;
  trace: TraceContext | undefined;
}

/** What a revision message says about itself, without decoding the body. */
export function readRevisionHeaders(hdrs: MsgHdrs | undefined): RevisionHeaders {
  const get = (k: string) => (hdrs?.has(k) ? hdrs.get(k) : undefined);
  const rev = get(MESH_REVISION_HEADER);
  const n = rev !== undefined && /^\d+$/.test(rev) ? Number(rev) : undefined;
  return {
    revision: n,
    cluster: get(MESH_CLUSTER_HEADER),
    hash: get(MESH_HASH_HEADER),
    trace: extractTraceContext(hdrs),
  };
}
