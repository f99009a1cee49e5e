import type { ChangeSet } from '@meshplane/event-store';
import type { TraceContext } from '@meshplane/messaging';
import {
  contextFromTraceparent,
  type Histogram,
  labelText,
  Registry,
  recordError,
  SpanKind,
  trace,
  traceContextOf,
  tracer,
} from '@meshplane/telemetry';

export type RelayRole = 'starting' | 'standby' | 'leader' | 'stopped';

/**
 * In-process relay metrics, plain getters for a later /metrics endpoint. Only the leader knows the
 * stream's tail for sure; a standby keeps the last values it saw.
 */
export class RelayMetrics {
  private _role: RelayRole = 'starting';
  private _lastPublished = 0;
  private _head = 0;
  private _published = 0;
  private _duplicates = 0;
  private _resyncs = 0;
  private _leaderSince: Date | null = null;
  private _lastPublishedAt: Date | null = null;
  private _blockedReason: string | null = null;
  private _leaderships = 0;
  private readonly publishSeconds: Histogram;
  private readonly registry = new Registry();

  constructor(private readonly cluster = '') {
    this.publishSeconds = this.registry.histogram(
      'mesh_relay_publish_seconds',
      'Commit of a revision to its storage in the stream (the relay part of mesh_propagation_seconds).',
      ['cluster'],
    );
  }

  get role(): RelayRole {
    return this._role;
  }
  get isLeader(): boolean {
    return this._role === 'leader';
  }
  /** Last revision known to be in the stream (its last sequence). */
  get lastPublishedRevision(): number {
    return this._lastPublished;
  }
  /** Latest head revision seen in the log (NOTIFY payloads and head reads). */
  get headRevision(): number {
    return this._head;
  }
  /** Committed but not yet published revisions. */
  get lagRevisions(): number {
    return Math.max(0, this._head - this._lastPublished);
  }
  /** Messages this process stored (duplicates excluded). */
  get publishedTotal(): number {
    return this._published;
  }
  /** Publishes the stream answered as duplicates (a retry of something already stored). */
  get duplicatesTotal(): number {
    return this._duplicates;
  }
  /** Times the checkpoint was re-read after the stream moved under us (10071) or an error. */
  get resyncsTotal(): number {
    return this._resyncs;
  }
  get leadershipsTotal(): number {
    return this._leaderships;
  }
  get leaderSince(): Date | null {
    return this._leaderSince;
  }
  get lastPublishedAt(): Date | null {
    return this._lastPublishedAt;
  }
  /** Set while the leader refuses to publish (stream ahead of or diverged from the log). */
  get blockedReason(): string | null {
    return this._blockedReason;
  }

  snapshot(): Record<string, unknown> {
    return {
      role: this.role,
      lastPublishedRevision: this.lastPublishedRevision,
      headRevision: this.headRevision,
      lagRevisions: this.lagRevisions,
      publishedTotal: this.publishedTotal,
      duplicatesTotal: this.duplicatesTotal,
      resyncsTotal: this.resyncsTotal,
      leadershipsTotal: this.leadershipsTotal,
      leaderSince: this.leaderSince?.toISOString() ?? null,
      lastPublishedAt: this.lastPublishedAt?.toISOString() ?? null,
      blockedReason: this.blockedReason,
    };
  }

  // ---- updates, called by the relay only

  setRole(role: RelayRole): void {
    if (role === 'leader' && this._role !== 'leader') {
      this._leaderSince = new Date();
      this._leaderships++;
    }
    if (role !== 'leader') this._leaderSince = null;
    this._role = role;
  }
  observeHead(revision: number): void {
    if (Number.isSafeInteger(revision) && revision > this._head) this._head = revision;
  }
  /** The head as read from the log; may move back after a restore, unlike NOTIFY observations. */
  setHead(revision: number): void {
    this._head = revision;
  }
  setCheckpoint(revision: number): void {
    this._lastPublished = revision;
  }
  published(revision: number, duplicate: boolean, committedAt?: Date): void {
    this._lastPublished = Math.max(this._lastPublished, revision);
    this._lastPublishedAt = new Date();
    if (committedAt && !duplicate)
      this.publishSeconds.observe(
        { cluster: this.cluster },
        Math.max(0, (this._lastPublishedAt.getTime() - committedAt.getTime()) / 1000),
      );
    if (duplicate) this._duplicates++;
    else this._published++;
  }
  resynced(): void {
    this._resyncs++;
  }
  setBlocked(reason: string | null): void {
    this._blockedReason = reason;
  }

  /** Prometheus text for GET /metrics (MESH_METRICS_PORT). */
  renderPrometheus(): string {
    const c = labelText({ cluster: this.cluster });
    const lines: string[] = [];
    const one = (name: string, type: 'gauge' | 'counter', help: string, value: number) =>
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name}${c} ${value}`);
    one(
      'mesh_relay_leader',
      'gauge',
      '1 while this instance is the publishing leader.',
      this.isLeader ? 1 : 0,
    );
    one(
      'mesh_relay_head_revision',
      'gauge',
      'Newest revision committed to the log, as this relay saw it.',
      this._head,
    );
    one(
      'mesh_relay_published_revision',
      'gauge',
      'Last revision known to be in the stream.',
      this._lastPublished,
    );
    one('mesh_relay_lag_revisions', 'gauge', 'Committed but not yet published revisions.', this.lagRevisions);
    one(
      'mesh_relay_lag_seconds',
      'gauge',
      'Seconds since the last publish while revisions wait (0 when caught up).',
      this.lagRevisions > 0 && this._lastPublishedAt
        ? (Date.now() - this._lastPublishedAt.getTime()) / 1000
        : 0,
    );
    one(
      'mesh_relay_published_total',
      'counter',
      'Revisions this process stored in the stream.',
      this._published,
    );
    one(
      'mesh_relay_duplicates_total',
      'counter',
      'Publishes the stream answered as duplicates.',
      this._duplicates,
    );
    one(
      'mesh_relay_resyncs_total',
      'counter',
      'Checkpoint re-reads after the stream moved or an error.',
      this._resyncs,
    );
    one(
      'mesh_relay_blocked',
      'gauge',
      '1 while the leader refuses to publish (stream and log disagree).',
      this._blockedReason ? 1 : 0,
    );
    return `${lines.join('\n')}\n${this.registry.render()}`;
  }
}

/** The `mesh.revision.publish` span of one revision, from the publish call to its ack. */
export interface PublishTrace {
  /** The span's context for the message headers (undefined with tracing off: the stored one is sent). */
  readonly context: TraceContext | undefined;
  acked(duplicate: boolean): void;
  failed(err: unknown): void;
}

const NO_TRACE: PublishTrace = { context: undefined, acked: () => undefined, failed: () => undefined };

/**
 * Starts the publish span as a child of the context the API stored with the change set, so the
 * trace continues from the API call; the agents' apply spans become children of this one.
 */
export function startPublishTrace(cs: ChangeSet, cluster: string, stream: string): PublishTrace {
  const parent = contextFromTraceparent(
    cs.traceContext,
    typeof cs.metadata?.tracestate === 'string' ? cs.metadata.tracestate : null,
  );
  // No stored context (written with tracing off, or before it existed): no trace to continue.
  if (!trace.getSpanContext(parent)) return NO_TRACE;
  const span = tracer.startSpan(
    'mesh.revision.publish',
    {
      kind: SpanKind.PRODUCER,
      attributes: {
        'mesh.revision': cs.revision,
        'mesh.cluster': cluster,
        'mesh.events': cs.eventCount,
        'messaging.system': 'nats',
        'messaging.destination.name': stream,
        'messaging.message.id': `${cluster}:${cs.revision}`,
        'mesh.commit_to_publish_ms': Date.now() - cs.createdAt.getTime(),
      },
    },
    parent,
  );
  return {
    context: traceContextOf(trace.setSpan(parent, span)),
    acked(duplicate) {
      span.setAttribute('mesh.duplicate', duplicate);
      span.end();
    },
    failed(err) {
      recordError(span, err);
      span.end();
    },
  };
}
