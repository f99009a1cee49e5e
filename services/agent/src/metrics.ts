import type { ApplyOutcome, MapBackend, MapEntry } from '@meshplane/dataplane';
import type { ChangeSet } from '@meshplane/event-store';
import type { MsgHdrs } from '@meshplane/messaging';
import {
  type Attributes,
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

interface Folded {
  revision: number;
  committedAtMs: number;
  ctx: Context;
}

export class AgentObserver {
  readonly registry: PromRegistry = new Registry();
  private readonly labels: { node: string; cluster: string };
  private readonly propagation;
  private readonly applySeconds;
  private readonly head;
  private readonly applied;
  private readonly ops;
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

  constructor(
    readonly node: string,
    readonly cluster: string,
  ) {
    this.labels = { node, cluster };
    const r = this.registry;
    const L = ['node', 'cluster'];
    this.propagation = r.histogram(
      'mesh_propagation_seconds',
      'Commit of a revision in the log to its map writes on this node (live revisions only, not catch-up after a restart).',
      L,
    );
    this.applySeconds = r.histogram(
      'mesh_apply_duration_seconds',
      'One apply: compile, diff and map writes.',
      L,
    );
    this.head = r.gauge('mesh_head_revision', 'Newest revision this node received from the stream.', L);
    this.applied = r.gauge('mesh_applied_revision', 'Revision the maps of this node hold (checkpoint).', L);
    this.ops = r.counter('mesh_map_ops_total', 'Map entries written or deleted, by map and action.', [
      ...L,
      'map',
      'action',
    ]);
    this.errors = r.counter('mesh_apply_errors_total', 'Failed apply attempts (retried with backoff).', L);
    this.coalesced = r.histogram(
      'mesh_apply_coalesced_revisions',
      'Revisions folded into one apply.',
      L,
      [1, 2, 4, 8, 16, 64, 256, 1024],
    );
  }

  render(): string {
    return this.registry.render();
  }

  /** A revision message arrived from the stream. */
  received(seq: number): void {
    if (seq > this.head.get(this.labels)) this.head.set(this.labels, seq);
  }

  /** A revision was folded into the desired state; its headers carry the relay's publish span. */
  foldedRevision(cs: ChangeSet, headers: MsgHdrs | undefined): void {
    const committedAtMs = cs.createdAt.getTime();
    this.folded.push({ revision: cs.revision, committedAtMs, ctx: extractNatsHeaders(headers) });
    // Catch-up after a restart is not propagation: only revisions committed while this agent ran.
    if (committedAtMs >= this.startedAtMs - 1000) this.unapplied.set(cs.revision, committedAtMs);
  }

  /** Every attempt's outcome (applies, retries, full passes), from the reconciler. */
  outcome(o: ApplyOutcome): void {
    if (!o.ok) {
      this.errors.inc(this.labels);
      return;
    }
    if (o.kind !== 'apply') return;
    this.applied.set(this.labels, o.revision);
    this.applySeconds.observe(this.labels, o.durationMs / 1000);
    for (const [revision, committedAtMs] of this.unapplied) {
      if (revision > o.revision) continue;
      this.propagation.observe(this.labels, Math.max(0, (o.at - committedAtMs) / 1000));
      this.unapplied.delete(revision);
    }
  }

  /** The backend the reconciler writes through: counts ops per map and notes the first write. */
  wrap(backend: MapBackend): MapBackend {
    const note = (map: string, action: string, n: number) => {
      this.writes.first ??= now();
      this.writes.perMap.set(map, (this.writes.perMap.get(map) ?? 0) + n);
      this.ops.inc({ ...this.labels, map, action }, n);
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

  /** Starts the apply span of everything folded since the last apply. */
  beginApply(revision: number): ApplyTrace {
    const inputs = this.folded;
    this.folded = [];
    this.coalesced.observe(this.labels, Math.max(1, inputs.length));
    return new ApplyTrace(this, revision, inputs);
  }

  /** Resets the write notes at the start of a reconciler attempt and returns them at its end. */
  takeWrites(): { first: number | undefined; perMap: Map<string, number> } {
    const w = this.writes;
    this.writes = { first: undefined, perMap: new Map() };
    return w;
  }
}

/** The spans of one apply. With tracing off every span is the API's non-recording one. */
export class ApplyTrace {
  private readonly span: Span;
  private readonly ctx: Context;
  private compileSpan: Span | undefined;
  private compileEnd: number | undefined;

  constructor(
    private readonly obs: AgentObserver,
    readonly revision: number,
    inputs: Folded[],
  ) {
    // Parent: the newest revision's publish span; the older coalesced ones are links.
    const newest = inputs[inputs.length - 1];
    const parent = newest && trace.getSpanContext(newest.ctx) ? newest.ctx : context.active();
    const links: Link[] = [];
    for (const f of inputs.slice(0, -1).slice(-MAX_LINKS)) {
      const sc = trace.getSpanContext(f.ctx);
      if (sc) links.push({ context: sc, attributes: { 'mesh.revision': f.revision } });
    }
    const attributes: Attributes = {
      'mesh.revision': revision,
      'mesh.cluster': obs.cluster,
      'mesh.node': obs.node,
      'mesh.coalesced_revisions': inputs.length,
    };
    if (inputs.length > 0) {
      attributes['mesh.first_revision'] = inputs[0]!.revision;
      attributes['mesh.lag_ms'] = Math.max(0, Date.now() - newest!.committedAtMs);
    }
    this.span = tracer.startSpan(
      'mesh.revision.apply',
      { kind: SpanKind.CONSUMER, attributes, links },
      parent,
    );
    this.ctx = trace.setSpan(parent, this.span);
    obs.takeWrites();
  }

  compileStarted(): void {
    this.compileSpan = tracer.startSpan(
      'mesh.compile',
      { attributes: { 'mesh.revision': this.revision, 'mesh.node': this.obs.node } },
      this.ctx,
    );
  }

  compiled(attributes: Attributes): void {
    this.compileSpan?.setAttributes(attributes);
    this.compileSpan?.end();
    this.compileEnd = now();
    this.obs.takeWrites(); // reads during the compile (ids) are not the diff's
  }

  /** The compile (or reading the maps back for it) failed: nothing was submitted. */
  failed(err: unknown): void {
    if (this.compileSpan && this.compileEnd === undefined) {
      recordError(this.compileSpan, err);
      this.compileSpan.end();
    }
    recordError(this.span, err);
    this.span.end();
  }

  /** The reconciler's first attempt for this apply finished. */
  submitted(o: ApplyOutcome): void {
    const end = now();
    const { first, perMap } = this.obs.takeWrites();
    const diffStart = this.compileEnd ?? end;
    const attrs: Attributes = { 'mesh.revision': o.revision, 'mesh.node': this.obs.node };
    const diff = tracer.startSpan('mesh.diff', { startTime: diffStart, attributes: attrs }, this.ctx);
    const opAttrs: Attributes = { ...attrs, 'mesh.ops': o.ops, 'mesh.batches': o.batches };
    for (const [map, n] of perMap) opAttrs[`mesh.ops.${map}`] = n;
    const error = o.ok ? undefined : new Error(o.error ?? 'apply failed');
    if (first === undefined) {
      // Failed before any write (reading the maps back): the diff carries the error.
      if (error) recordError(diff, error);
      diff.end(end);
    } else {
      diff.end(first);
      const write = tracer.startSpan('mesh.map.write', { startTime: first, attributes: opAttrs }, this.ctx);
      if (error) recordError(write, error);
      write.end(end);
    }
    this.span.setAttributes({ 'mesh.ops': o.ops, 'mesh.duration_ms': o.durationMs });
    if (error) {
      this.span.setAttribute('mesh.retry_in_ms', o.retryInMs ?? -1);
      recordError(this.span, error);
    }
    this.span.end(end);
  }
}
