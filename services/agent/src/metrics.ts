import type { ApplyOutcome, MapBackend, MapEntry } from '@meshplane/dataplane';
import type { ChangeSet } from '@meshplane/event-store';
import type { MsgHdrs } from '@meshplane/messaging';
import {
  type Attributes,
  type BoundCounter,
  beforeTelemetryShutdown,
  type Context,
  context,
  extractNatsHeaders,
  type Link,
  type Registry as PromRegistry,
  Registry,
  recordError,
  type Span,
  SpanKind,
  trace,
  tracer,
  tracerRegistered,
  tracingEnabled,
} from '@meshplane/telemetry';

/*
 * The agent's observability: Prometheus series for GET /metrics (MESH_METRICS_PORT) and the
 * `mesh.revision.apply` span of each apply with its `mesh.compile`, `mesh.diff` and
 * `mesh.map.write` children. The reconciler plans and writes in one call, so diff and map-write
 * spans are cut from the backend's own calls: the diff runs from the end of the compile to the
 * first map write, the writes from there to the end of the attempt (checkpoint included).
 */

/** Links beyond this are counted, not added: a replay of thousands of revisions is one apply. */
const MAX_LINKS = 32;

const now = () => performance.timeOrigin + performance.now();

/**
 * With tracing on, the spans of finished applies are built in batches, at most this long after
 * the apply (the batch processor holds them up to 5 s before export anyway): built one apply at a
 * time, the SDK's cold code costs more than the apply's own compile on a quiet node, and the
 * batch no longer competes with the map writes of the next revision.
 */
const SPAN_BATCH_MS = 1000;
const SPAN_BATCH_MAX = 64;

interface Folded {
  revision: number;
  committedAtMs: number;
  /** The message's headers, read only if a span will use them (decoding them is a few KB each). */
  headers: () => MsgHdrs | undefined;
}

export class AgentObserver {
  readonly registry: PromRegistry = new Registry();
  private readonly labels: { node: string; cluster: string };
  private readonly propagation;
  private readonly applySeconds;
  private readonly head;
  private readonly applied;
  private readonly ops;
  /** mesh_map_ops_total bound per map, then action (no key string built per write). */
  private readonly opsByMap = new Map<string, { update?: BoundCounter; delete?: BoundCounter }>();
  private readonly errors;
  private readonly coalesced;
  /** Revisions folded into the state since the last apply began (this apply's inputs). */
  private folded: Folded[] = [];
  /** Commit times of revisions folded but not yet applied, for mesh_propagation_seconds. */
  private readonly unapplied = new Map<number, number>();
  private readonly startedAtMs = Date.now();
  private writes: { first: number | undefined; perMap: Map<string, number> } = {
    first: undefined,
    perMap: new Map(),
  };

  /** Whether the spans of finished applies are built in batches (default: when tracing is on). */
  private readonly batchSpans: boolean;

  constructor(
    readonly node: string,
    readonly cluster: string,
    options: { batchSpans?: boolean } = {},
  ) {
    this.batchSpans = options.batchSpans ?? tracingEnabled();
    this.labels = { node, cluster };
    const r = this.registry;
    const L = ['node', 'cluster'];
    this.propagation = r
      .histogram(
        'mesh_propagation_seconds',
        'Commit of a revision in the log to its map writes on this node (live revisions only, not catch-up after a restart).',
        L,
      )
      .bind(this.labels);
    this.applySeconds = r
      .histogram('mesh_apply_duration_seconds', 'One apply: compile, diff and map writes.', L)
      .bind(this.labels);
    this.head = r
      .gauge('mesh_head_revision', 'Newest revision this node received from the stream.', L)
      .bind(this.labels);
    this.applied = r
      .gauge('mesh_applied_revision', 'Revision the maps of this node hold (checkpoint).', L)
      .bind(this.labels);
    this.ops = r.counter('mesh_map_ops_total', 'Map entries written or deleted, by map and action.', [
      ...L,
      'map',
      'action',
    ]);
    this.errors = r
      .counter('mesh_apply_errors_total', 'Failed apply attempts (retried with backoff).', L)
      .bind(this.labels);
    this.coalesced = r
      .histogram(
        'mesh_apply_coalesced_revisions',
        'Revisions folded into one apply.',
        L,
        [1, 2, 4, 8, 16, 64, 256, 1024],
      )
      .bind(this.labels);
  }

  render(): string {
    return this.registry.render();
  }

  /** A revision message arrived from the stream. */
  received(seq: number): void {
    if (seq > this.head.get()) this.head.set(seq);
  }

  /** A revision was folded into the desired state; its headers carry the relay's publish span. */
  foldedRevision(cs: ChangeSet, headers: () => MsgHdrs | undefined): void {
    const committedAtMs = cs.createdAt.getTime();
    this.folded.push({ revision: cs.revision, committedAtMs, headers });
    // Catch-up after a restart is not propagation: only revisions committed while this agent ran.
    if (committedAtMs >= this.startedAtMs - 1000) this.unapplied.set(cs.revision, committedAtMs);
  }

  /** Every attempt's outcome (applies, retries, full passes), from the reconciler. */
  outcome(o: ApplyOutcome): void {
    if (!o.ok) {
      this.errors.inc();
      return;
    }
    if (o.kind !== 'apply') return;
    this.applied.set(o.revision);
    this.applySeconds.observe(o.durationMs / 1000);
    for (const [revision, committedAtMs] of this.unapplied) {
      if (revision > o.revision) continue;
      this.propagation.observe(Math.max(0, (o.at - committedAtMs) / 1000));
      this.unapplied.delete(revision);
    }
  }

  /** The backend the reconciler writes through: counts ops per map and notes the first write. */
  wrap(backend: MapBackend): MapBackend {
    const note = (map: string, action: 'update' | 'delete', n: number) => {
      this.writes.first ??= now();
      this.writes.perMap.set(map, (this.writes.perMap.get(map) ?? 0) + n);
      let byAction = this.opsByMap.get(map);
      if (!byAction) {
        byAction = {};
        this.opsByMap.set(map, byAction);
      }
      byAction[action] ??= this.ops.bind({ ...this.labels, map, action });
      byAction[action].inc(n);
    };
    const wrapped: MapBackend = {
      kind: backend.kind,
      lookup: (map, key) => backend.lookup(map, key),
      iterate: (map) => backend.iterate(map),
      update: (map, entries: readonly MapEntry[]) => {
        note(map, 'update', entries.length);
        return backend.update(map, entries);
      },
      delete: (map, keys) => {
        note(map, 'delete', keys.length);
        return backend.delete(map, keys);
      },
      readMeta: () => backend.readMeta(),
      writeMeta: (meta) => {
        this.writes.first ??= now();
        return backend.writeMeta(meta);
      },
      close: () => backend.close(),
    };
    // The backends' batch paths from byte strings (one latin1 write per buffer in BPF, no
    // bytes at all in memory) must stay reachable through the wrapper: without these the
    // reconciler falls back to two copies per entry.
    const { updateStrings, deleteStrings, readStrings } = backend;
    if (updateStrings)
      wrapped.updateStrings = (map, keys, values) => {
        note(map, 'update', keys.length);
        return updateStrings.call(backend, map, keys, values);
      };
    if (deleteStrings)
      wrapped.deleteStrings = (map, keys) => {
        note(map, 'delete', keys.length);
        return deleteStrings.call(backend, map, keys);
      };
    if (readStrings) wrapped.readStrings = (map) => readStrings.call(backend, map);
    return wrapped;
  }

  /** Builders of the spans of finished applies, not yet run (tracing on only). */
  private pendingSpans: Array<() => void> = [];
  private spanTimer: NodeJS.Timeout | undefined;
  private flushHooked = false;

  /** Runs `build` (the spans of one finished apply) now with tracing off, else in the next batch. */
  deferSpans(build: () => void): void {
    if (!this.batchSpans) {
      build();
      return;
    }
    if (!this.flushHooked) {
      this.flushHooked = true;
      beforeTelemetryShutdown(() => this.flushSpans());
    }
    this.pendingSpans.push(build);
    if (this.pendingSpans.length >= SPAN_BATCH_MAX) this.flushSpans();
    else if (!this.spanTimer) {
      this.spanTimer = setTimeout(() => this.flushSpans(), SPAN_BATCH_MS);
      this.spanTimer.unref();
    }
  }

  /** Builds every deferred span now (also run before the SDK's last export at shutdown). */
  flushSpans(): void {
    clearTimeout(this.spanTimer);
    this.spanTimer = undefined;
    const builds = this.pendingSpans;
    this.pendingSpans = [];
    for (const build of builds) build();
  }

  /** Starts the apply span of everything folded since the last apply. */
  beginApply(revision: number): ApplyTrace {
    const inputs = this.folded;
    this.folded = [];
    this.coalesced.observe(Math.max(1, inputs.length));
    return new ApplyTrace(this, revision, inputs);
  }

  /** Resets the write notes at the start of a reconciler attempt and returns them at its end. */
  takeWrites(): { first: number | undefined; perMap: Map<string, number> } {
    const w = this.writes;
    this.writes = { first: undefined, perMap: new Map() };
    return w;
  }
}

/**
 * The spans of one apply. They are built after the attempt, from the times noted on the way (a
 * span is a record of what happened), so the SDK's work never sits between a revision and its map
 * writes; with tracing on, in batches (SPAN_BATCH_MS). With tracing off every span is the API's
 * non-recording one.
 */
export class ApplyTrace {
  private readonly parent: Context;
  private readonly links: Link[];
  private readonly attributes: Attributes;
  private readonly startedAt = now();
  private compileStart: number | undefined;
  private compileEnd: number | undefined;
  private compileAttributes: Attributes | undefined;

  constructor(
    private readonly obs: AgentObserver,
    readonly revision: number,
    inputs: Folded[],
  ) {
    // Parent: the newest revision's publish span; the older coalesced ones are links. Without a
    // tracer provider the spans are no-ops: the headers stay unread.
    const newest = inputs[inputs.length - 1];
    const live = tracerRegistered();
    const ctx = live && newest ? extractNatsHeaders(newest.headers()) : undefined;
    this.parent = ctx && trace.getSpanContext(ctx) ? ctx : context.active();
    this.links = [];
    for (const f of live ? inputs.slice(0, -1).slice(-MAX_LINKS) : []) {
      const sc = trace.getSpanContext(extractNatsHeaders(f.headers()));
      if (sc) this.links.push({ context: sc, attributes: { 'mesh.revision': f.revision } });
    }
    this.attributes = {
      'mesh.revision': revision,
      'mesh.cluster': obs.cluster,
      'mesh.node': obs.node,
      'mesh.coalesced_revisions': inputs.length,
    };
    if (inputs.length > 0) {
      this.attributes['mesh.first_revision'] = inputs[0]!.revision;
      this.attributes['mesh.lag_ms'] = Math.max(0, Date.now() - newest!.committedAtMs);
    }
    obs.takeWrites();
  }

  compileStarted(): void {
    this.compileStart = now();
  }

  compiled(attributes: Attributes): void {
    this.compileEnd = now();
    this.compileAttributes = attributes;
    this.obs.takeWrites(); // reads during the compile (ids) are not the diff's
  }

  /** The compile (or reading the maps back for it) failed: nothing was submitted. */
  failed(err: unknown): void {
    const end = now();
    this.obs.deferSpans(() => this.failedSpans(err, end));
  }

  /** The reconciler's first attempt for this apply finished. */
  submitted(o: ApplyOutcome): void {
    const end = now();
    const writes = this.obs.takeWrites();
    this.obs.deferSpans(() => this.submittedSpans(o, end, writes));
  }

  private failedSpans(err: unknown, end: number): void {
    const { span, ctx } = this.startApplySpan();
    if (this.compileStart !== undefined && this.compileEnd === undefined) {
      const compile = this.startCompileSpan(ctx);
      recordError(compile, err, end);
      compile.end(end);
    }
    recordError(span, err, end);
    span.end(end);
  }

  private submittedSpans(
    o: ApplyOutcome,
    end: number,
    { first, perMap }: { first: number | undefined; perMap: Map<string, number> },
  ): void {
    const { span, ctx } = this.startApplySpan();
    if (!span.isRecording()) {
      // Tracing off or not sampled: the children would be non-recording too, only slower.
      span.end(end);
      return;
    }
    if (this.compileStart !== undefined) this.startCompileSpan(ctx).end(this.compileEnd ?? end);
    const diffStart = this.compileEnd ?? end;
    const attrs: Attributes = { 'mesh.revision': o.revision, 'mesh.node': this.obs.node };
    const diff = tracer.startSpan('mesh.diff', { startTime: diffStart, attributes: attrs }, ctx);
    const opAttrs: Attributes = { ...attrs, 'mesh.ops': o.ops, 'mesh.batches': o.batches };
    for (const [map, n] of perMap) opAttrs[`mesh.ops.${map}`] = n;
    const error = o.ok ? undefined : new Error(o.error ?? 'apply failed');
    if (first === undefined) {
      // Failed before any write (reading the maps back): the diff carries the error.
      if (error) recordError(diff, error, end);
      diff.end(end);
    } else {
      diff.end(first);
      const write = tracer.startSpan('mesh.map.write', { startTime: first, attributes: opAttrs }, ctx);
      if (error) recordError(write, error, end);
      write.end(end);
    }
    span.setAttributes({ 'mesh.ops': o.ops, 'mesh.duration_ms': o.durationMs });
    if (error) {
      span.setAttribute('mesh.retry_in_ms', o.retryInMs ?? -1);
      recordError(span, error, end);
    }
    span.end(end);
  }

  private startApplySpan(): { span: Span; ctx: Context } {
    const span = tracer.startSpan(
      'mesh.revision.apply',
      { kind: SpanKind.CONSUMER, attributes: this.attributes, links: this.links, startTime: this.startedAt },
      this.parent,
    );
    return { span, ctx: trace.setSpan(this.parent, span) };
  }

  private startCompileSpan(ctx: Context): Span {
    const span = tracer.startSpan(
      'mesh.compile',
      {
        startTime: this.compileStart!,
        attributes: { 'mesh.revision': this.revision, 'mesh.node': this.obs.node, ...this.compileAttributes },
      },
      ctx,
    );
    return span;
  }
}
