import type { ChangeSet, LogReader } from '@meshplane/event-store';
import {
  decodeRevision,
  getRevisionMessage,
  lastPublishedRevision,
  type PublishRevisionOptions,
  publishRevision,
  RevisionTooLargeError,
  readRevisionHeaders,
} from '@meshplane/messaging';
import type { JetStreamClient, JetStreamManager, PubAck } from '@nats-io/jetstream';
import type { Logger } from './logger';
import { type PublishTrace, type RelayMetrics, startPublishTrace } from './metrics';

/**
 * The stream and the log disagree in a way that publishing would make worse: the stream is ahead
 * of the database (restored from an older backup), its tail is not the log's revision, or the log
 * belongs to another cluster. An operator must look; the relay keeps checking and resumes by
 * itself once the two agree again.
 */
export class RelayBlockedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RelayBlockedError';
  }
}

/**
 * NATS reconnected while publishes were in flight: their acks may never come (the server
 * restarted, the reply subscription was re-made), so they are not waited for until the PubAck
 * deadline. Retrying is safe: the message id and the expected last sequence make a publish that
 * did land a duplicate, and the stream's tail is re-read first.
 */
export class NatsReconnectedError extends Error {
  constructor() {
    super('NATS reconnected while publishes were in flight; re-reading the stream and retrying');
    this.name = 'NatsReconnectedError';
  }
}

/** The reads the relay needs from the log (a LogReader; an EventStore has them too). */
export type RevisionLog = Pick<LogReader, 'head' | 'getChangeSet' | 'readRevisions'>;

export interface PublisherOptions {
  store: RevisionLog;
  js: JetStreamClient;
  jsm: JetStreamManager;
  cluster: string;
  stream: string;
  batchSize: number;
  publishWindow: number;
  log: Logger;
  metrics: RelayMetrics;
  /** The connected server's max_payload (it can change on reconnect to another server). */
  maxPayload?: () => number | undefined;
}

/** Change sets kept for takePublished(): the exporter's next step, not a backlog's replay. */
const KEEP_PUBLISHED = 256;

/**
 * Moves revisions from the log to the stream, in order. The stream is the checkpoint: its last
 * sequence is the last published revision, re-read whenever this process cannot be sure of it
 * (new leadership, an error, or 10071 because someone else published meanwhile).
 */
export class RevisionPublisher {
  private checkpoint: number | undefined;
  /** Revisions acked since the last takePublished(), in order: the first KEEP_PUBLISHED of them. */
  private published: ChangeSet[] = [];
  private readonly onReconnect = new Set<(err: Error) => void>();

  constructor(private readonly o: PublisherOptions) {}

  /** The connection came back: publishes in flight fail now (NatsReconnectedError) instead of timing out. */
  connectionReset(): void {
    for (const fail of this.onReconnect) fail(new NatsReconnectedError());
  }

  /** Forget the checkpoint; the next catch-up re-reads it from the stream. */
  invalidate(): void {
    this.checkpoint = undefined;
    this.published = [];
  }

  /**
   * The change sets published since the last call, in order: the exporter folds these instead of
   * reading them from the log again (one query per revision fewer). After a large catch-up only
   * the first are kept (they follow what the exporter last folded); it reads the rest.
   */
  takePublished(): ChangeSet[] {
    const out = this.published;
    this.published = [];
    return out;
  }

  /** Reads the stream's last sequence and checks that its tail is the log's revision. */
  async sync(): Promise<number> {
    const { jsm, cluster, stream, store, metrics } = this.o;
    // Stream first, then head: the head only grows, so "stream > head" cannot be a race.
    const last = await lastPublishedRevision(jsm, cluster, stream);
    const head = await store.head();
    metrics.setHead(head.revision);
    if (last > head.revision) {
      throw new RelayBlockedError(
        `stream ${stream} ends at revision ${last} but the database head is ${head.revision}: ` +
          'the database was restored from an older backup or belongs to another deployment; ' +
          'refusing to publish so that agents are not sent conflicting revisions',
      );
    }
    if (last > 0) await this.checkTail(last);
    metrics.setCheckpoint(last);
    this.checkpoint = last;
    return last;
  }

  /** The stored message at `last` must be that revision of this log (same chain hash). */
  private async checkTail(last: number): Promise<void> {
    const { jsm, cluster, stream, store } = this.o;
    const msg = await getRevisionMessage(jsm, cluster, last, stream);
    if (!msg) return; // aged out (max_age) or deleted: nothing to compare against
    const h = readRevisionHeaders(msg.header);
    if (h.revision !== undefined && h.revision !== last) {
      throw new RelayBlockedError(`stream ${stream} holds revision ${h.revision} at sequence ${last}`);
    }
    const hash = h.hash ?? decodeRevision(msg.data).hash;
    const cs = await store.getChangeSet(last);
    if (!cs || cs.hash !== hash) {
      throw new RelayBlockedError(
        `stream ${stream} revision ${last} has hash ${hash.slice(0, 12)}… but the log has ` +
          `${cs ? `${cs.hash.slice(0, 12)}…` : 'no such revision'}: the stream and the database diverged`,
      );
    }
  }

  /**
   * Publishes every revision after the checkpoint up to the head. Up to `publishWindow`
   * publishes are in flight; each still carries its expected last sequence, so the server
   * accepts them only in order. Stops before the next publish as soon as `stop()` says so.
   *
   * `notified`: a revision a NOTIFY announced (sent only once it committed). When it is past the
   * checkpoint it is read up to without asking for the head first, which saves a round trip per
   * commit; anything committed after it comes with its own NOTIFY.
   */
  async catchUp(stop: () => boolean, notified?: number): Promise<number> {
    const { store, metrics, log, batchSize, publishWindow } = this.o;
    const from = (this.checkpoint ?? (await this.sync())) + 1;
    const useNotified = notified !== undefined && Number.isSafeInteger(notified) && notified >= from;
    const head = useNotified ? { revision: notified } : await store.head();
    if (useNotified) metrics.observeHead(head.revision);
    else metrics.setHead(head.revision);
    if (head.revision < from - 1) {
      this.invalidate();
      throw new RelayBlockedError(
        `database head ${head.revision} is behind the published revision ${from - 1}`,
      );
    }
    if (head.revision < from) return 0;

    const started = Date.now();
    const inflight: Array<{
      cs: ChangeSet;
      ack: Promise<PubAck>;
      committedAt: Date;
      trace: PublishTrace;
    }> = [];
    let expected = from;
    let done = 0;
    let firstError: unknown;
    let failOnReconnect: (err: Error) => void = () => undefined;
    const reconnected = new Promise<never>((_, reject) => {
      failOnReconnect = reject;
    });
    reconnected.catch(() => undefined);
    this.onReconnect.add(failOnReconnect);
    const settleOldest = async () => {
      const { cs, ack, committedAt, trace } = inflight.shift()!;
      const revision = cs.revision;
      try {
        const a = await Promise.race([ack, reconnected]);
        trace.acked(a.duplicate);
        this.checkpoint = revision;
        if (this.published.length < KEEP_PUBLISHED) this.published.push(cs);
        metrics.published(revision, a.duplicate, committedAt);
        done++;
        if (a.duplicate) log.info('revision was already in the stream', { revision });
        else log.debug('published revision', { revision });
      } catch (err) {
        trace.failed(err);
        firstError ??= err;
      }
    };
    try {
      for await (const cs of store.readRevisions(from, { to: head.revision, batchSize })) {
        if (stop() || firstError !== undefined) break;
        if (cs.revision !== expected)
          throw new Error(`log read returned revision ${cs.revision}, expected ${expected}`);
        this.checkCluster(cs);
        const trace = startPublishTrace(cs, this.o.cluster, this.o.stream);
        const opts = this.publishOptions();
        if (trace.context) opts.trace = trace.context;
        const ack = publishRevision(this.o.js, this.o.cluster, cs, opts).catch((err) => {
          throw err instanceof RevisionTooLargeError ? new RelayBlockedError(err.message) : err;
        });
        ack.catch(() => undefined); // awaited in order below; never an unhandled rejection
        inflight.push({ cs, ack, committedAt: cs.createdAt, trace });
        expected++;
        if (inflight.length >= publishWindow) await settleOldest();
      }
    } finally {
      while (inflight.length > 0) await settleOldest();
      this.onReconnect.delete(failOnReconnect);
      // After a failed publish the tail is unknown (a timed-out one may have been stored): re-read.
      if (firstError !== undefined) this.invalidate();
    }
    if (done > 0) {
      log.info('published revisions', {
        from,
        to: this.checkpoint,
        count: done,
        durationMs: Date.now() - started,
        head: head.revision,
      });
    }
    if (firstError !== undefined) throw firstError;
    return done;
  }

  private publishOptions(): PublishRevisionOptions {
    const maxPayload = this.o.maxPayload?.();
    return { stream: this.o.stream, ...(maxPayload ? { maxPayload } : {}) };
  }

  private checkCluster(cs: ChangeSet): void {
    if (cs.cluster !== this.o.cluster) {
      throw new RelayBlockedError(
        `revision ${cs.revision} belongs to cluster ${JSON.stringify(cs.cluster)} but this relay publishes ` +
          `cluster ${JSON.stringify(this.o.cluster)}: check MESH_CLUSTER and DATABASE_URL`,
      );
    }
  }
}
