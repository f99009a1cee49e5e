import {
  DiscardPolicy,
  JetStreamApiError,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StoredMsg,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import { revisionSubject, streamName } from './names';

/** Long enough to cover a relay crash + takeover, so a republished revision is reported duplicate. */
export const DUPLICATE_WINDOW_MS = 2 * 60_000;

export interface RevisionStreamOptions {
  /** Keep at most this many revisions (oldest dropped); default unlimited. Agents that fall behind
   * the oldest one bootstrap from a snapshot. */
  maxMsgs?: number;
  /** Override the stream name (default `streamName(cluster)`). */
  name?: string;
  /** Override the subject (default `revisionSubject(cluster)`). */
  subject?: string;
}

export interface ProvisionResult {
  info: StreamInfo;
  action: 'created' | 'updated' | 'unchanged';
}

const STREAM_NAME_IN_USE = 10058;

export function revisionStreamConfig(
  cluster: string,
  opts: RevisionStreamOptions = {},
): Partial<StreamConfig> & { name: string; subjects: string[] } {
  return {
    name: opts.name ?? streamName(cluster),
    subjects: [opts.subject ?? revisionSubject(cluster)],
    description: `Meshplane revisions of cluster ${cluster}: one message per revision, sequence == revision`,
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    max_msgs: opts.maxMsgs ?? -1,
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    num_replicas: 1,
    // Agents bootstrapping or checking one revision read single messages; direct get is cheaper.
    allow_direct: true,
  };
}

/** Fields this library owns on an existing stream; anything else an operator set is left alone. */
function drift(have: StreamConfig, want: Partial<StreamConfig>): string[] {
  const out: string[] = [];
  const sameSubjects =
    have.subjects?.length === want.subjects?.length &&
    (want.subjects ?? []).every((s) => have.subjects.includes(s));
  if (!sameSubjects) out.push('subjects');
  if (have.max_msgs !== want.max_msgs) out.push('max_msgs');
  if (have.duplicate_window !== want.duplicate_window) out.push('duplicate_window');
  if (have.discard !== want.discard) out.push('discard');
  if (have.allow_direct !== want.allow_direct) out.push('allow_direct');
  return out;
}

/**
 * Creates the revision stream, or brings an existing one to the wanted limits. Idempotent, and
 * safe when several processes race: a concurrent create is answered by re-reading. Storage and
 * retention cannot change in place, so a stream with other values is an error an operator must
 * resolve, never something to delete automatically (it holds the published history).
 */
export async function provisionRevisionStream(
  jsm: JetStreamManager,
  cluster: string,
  opts: RevisionStreamOptions = {},
): Promise<ProvisionResult> {
  const want = revisionStreamConfig(cluster, opts);
  const name = want.name;
  let info = await streamInfoOrUndefined(jsm, name);
  if (!info) {
    try {
      return { info: await jsm.streams.add(want), action: 'created' };
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === STREAM_NAME_IN_USE)) throw err;
      info = await jsm.streams.info(name);
    }
  }
  const have = info.config;
  if (have.storage !== want.storage || have.retention !== want.retention) {
    throw new Error(
      `stream ${name} exists with storage=${have.storage} retention=${have.retention}; ` +
        `Meshplane needs storage=${want.storage} retention=${want.retention} (recreate it deliberately)`,
    );
  }
  const changed = drift(have, want);
  if (changed.length === 0) return { info, action: 'unchanged' };
  const updated = await jsm.streams.update(name, { ...have, ...want });
  return { info: updated, action: 'updated' };
}

export async function streamInfoOrUndefined(
  jsm: JetStreamManager,
  name: string,
): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(name);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === 10059) return undefined;
    throw err;
  }
}

/**
 * The last revision in the stream (its last sequence; 0 when nothing was published). This is the
 * relay's checkpoint: retention may drop old messages, but the last sequence never goes back.
 */
export async function lastPublishedRevision(
  jsm: JetStreamManager,
  cluster: string,
  name?: string,
): Promise<number> {
  const info = await jsm.streams.info(name ?? streamName(cluster));
  return info.state.last_seq;
}

/** The stored message of `revision`, or undefined if it was never published or has aged out. */
export async function getRevisionMessage(
  jsm: JetStreamManager,
  cluster: string,
  revision: number,
  name?: string,
): Promise<StoredMsg | undefined> {
  // getMessage answers null for "no message found" (deleted, aged out, or never published).
  return (await jsm.streams.getMessage(name ?? streamName(cluster), { seq: revision })) ?? undefined;
}

/**
 * When `revision` was published: the JetStream message timestamp is set by the server when it
 * stored the message, so it *is* the publish time. Nothing is written to Postgres for this (the
 * log is append-only), and `GET /v1/revisions/:rev/propagation` reads it here. Undefined once the
 * message has aged out of the stream.
 */
export async function revisionPublishedAt(
  jsm: JetStreamManager,
  cluster: string,
  revision: number,
  name?: string,
): Promise<Date | undefined> {
  return (await getRevisionMessage(jsm, cluster, revision, name))?.time;
}
