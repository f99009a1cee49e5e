import type { ApplyOutcome } from '@meshplane/dataplane';
import {
  type AgentState,
  AppliedHistory,
  type AppliedRecord,
  encodeNodeStatus,
  type NodeStatus,
  nodeStatusKey,
} from '@meshplane/messaging';
import type { KV } from '@nats-io/kv';

/*
 * The node's status value in the KV bucket (key = node), rewritten after apply
 * attempts (coalesced, below) and on each heartbeat. Per-revision applied times live in
 * `recentApplies` (bounded, newest last): coalesced revisions share one record,
 * so "when did this node apply R" is the first record with revision >= R; that
 * is what the propagation endpoint reads. Nothing about sync state (SYNCED,
 * STALE, OFFLINE) is stored: readers derive it from these facts and the head.
 *
 * Writes after applies are coalesced (`changed()`): at most one per `minIntervalMs`, the last
 * one always written. The applied times are taken when the maps were written, not when the
 * value is put, so a later write reports the same per-node propagation latency; what the
 * delay costs is only how soon readers (GET /v1/nodes, meshctl wait) see it. With many agents
 * per CPU (simulations) the put and its encoding cost about as much as the apply itself.
 */

/**
 * Least time between two status writes after applies (MESH_STATUS_INTERVAL_MS). A write after a
 * quiet spell goes out at once, so one change is visible as soon as it is applied; only during a
 * stream of changes do readers see the node's status up to a second late. At 250 ms every node
 * wrote 4 values a second to the status stream while changes kept coming (400/s for 100 nodes);
 * in the propagation benchmark 1 s took 11-15% off the CPU per change, agents and NATS together.
 */
export const DEFAULT_STATUS_INTERVAL_MS = 1000;

/**
 * A coalesced write waits out the interval plus up to this share of it, at random. Every agent
 * applies a revision within the same few milliseconds, so without a spread their next writes all
 * fall due together: a burst on the status stream from the whole fleet, and on a machine that
 * hosts many agents (simulations) a burst of CPU that lands in whatever apply runs then.
 */
export const STATUS_WRITE_SPREAD = 0.2;

export interface StatusReporterOptions {
  node: string;
  cluster: string;
  agentVersion: string;
  recentApplies: number;
  /** Least time between two coalesced writes (changed()); 0 writes after every change. */
  minIntervalMs?: number;
  now?: () => number;
  /** [0, 1), for the spread of coalesced writes (tests pin it). */
  random?: () => number;
  onPutError?: (err: Error) => void;
  /**
   * Extra top-level fields written beside the NodeStatus fields (the data plane's own facts:
   * backend, pins, repairs). Readers that decode with decodeNodeStatus ignore them; tools and
   * tests that read the raw KV value see them.
   */
  extra?: () => Record<string, unknown>;
}

/** The KV value: the NodeStatus wire format plus `extra` fields (unknown fields are ignored by readers). */
export function encodeStatusWithExtra(status: NodeStatus, extra: Record<string, unknown>): Uint8Array {
  return encodeNodeStatus(status, extra);
}

export class StatusReporter {
  /** Everything but the history, which is kept (and encoded) apart. */
  private status: Omit<NodeStatus, 'recentApplies'>;
  private readonly history: AppliedHistory;
  private kv: KV | undefined;
  private writing: Promise<void> = Promise.resolve();
  private lastWriteAt = Number.NEGATIVE_INFINITY;
  private scheduled:
    | { kind: 'timeout'; t: ReturnType<typeof setTimeout> }
    | { kind: 'immediate'; t: ReturnType<typeof setImmediate> }
    | undefined;
  private closed = false;

  constructor(private readonly opts: StatusReporterOptions) {
    this.history = new AppliedHistory(opts.recentApplies);
    this.status = {
      node: opts.node,
      cluster: opts.cluster,
      appliedRevision: 0,
      appliedAt: null,
      lastError: null,
      applyDurationMs: null,
      ops: 0,
      agentVersion: opts.agentVersion,
      heartbeatAt: this.date(),
      state: 'STARTING',
      failedRevision: null,
      lastErrorAt: null,
    };
  }

  private date(ms?: number): Date {
    return new Date(ms ?? this.nowMs());
  }

  attach(kv: KV): void {
    this.kv = kv;
  }

  current(): NodeStatus {
    return { ...this.status, recentApplies: this.history.records() };
  }

  /** The applied revision and how long its apply took, without building the whole status. */
  applied(): { revision: number; durationMs: number | null } {
    return { revision: this.status.appliedRevision, durationMs: this.status.applyDurationMs };
  }

  /** What the maps held at start-up (the checkpoint), before anything is applied. */
  restored(revision: number, appliedAtMs: number | undefined): void {
    this.status.appliedRevision = revision;
    this.status.appliedAt = appliedAtMs ? this.date(appliedAtMs) : null;
  }

  /**
   * The history the previous process of this node wrote (its last KV value), so that a restart
   * does not erase when the node applied earlier revisions: records up to `upTo` (what the maps
   * hold) are kept, in order, before any new one. Only before the first apply of this process.
   */
  restoreHistory(previous: readonly AppliedRecord[], upTo: number): number {
    if (this.history.size > 0) return 0;
    let last = 0;
    for (const r of [...previous].sort((a, b) => a.revision - b.revision))
      if (r.revision <= upTo && r.revision > last) {
        this.history.push({ ...r });
        last = r.revision;
      }
    return this.history.size;
  }

  setState(state: AgentState, error?: string): void {
    this.status.state = state;
    if (error !== undefined) {
      this.status.lastError = error;
      this.status.lastErrorAt = this.date();
    }
  }

  /**
   * Folds one apply attempt (or full pass) into the status. `receivedAtMs`: when the applied
   * revision arrived from the stream, given only when the apply was for that revision alone.
   */
  outcome(o: ApplyOutcome, stillBehind: boolean, receivedAtMs?: number): void {
    const s = this.status;
    if (o.ok) {
      if (o.kind === 'apply' || o.revision !== s.appliedRevision) {
        const advanced = o.revision > s.appliedRevision;
        s.appliedRevision = o.revision;
        s.appliedAt = this.date(o.at);
        s.applyDurationMs = o.durationMs;
        s.ops = o.ops;
        if (advanced) this.history.pushMs(o.revision, o.at, o.durationMs, receivedAtMs);
      }
      s.lastError = null;
      s.failedRevision = null;
      s.state = stillBehind ? 'APPLYING' : 'READY';
    } else {
      s.lastError = o.error ?? 'apply failed';
      s.lastErrorAt = this.date(o.at);
      s.failedRevision = o.revision;
      s.state = 'ERROR';
    }
  }

  /**
   * A coalesced write after a change: on the next turn of the event loop when the last write
   * is at least minIntervalMs old (so the other work already queued, e.g. other agents of a
   * simulation applying the same revision, goes first), otherwise at the end of that interval
   * plus a random spread (STATUS_WRITE_SPREAD). Every change until then rides along in the one
   * write.
   */
  changed(): void {
    if (this.scheduled !== undefined || this.closed) return;
    const interval = this.opts.minIntervalMs ?? 0;
    let wait = this.lastWriteAt + interval - this.nowMs();
    if (wait > 0) wait += Math.floor((this.opts.random ?? Math.random)() * interval * STATUS_WRITE_SPREAD);
    const fire = () => {
      this.scheduled = undefined;
      void this.publish();
    };
    if (wait <= 0) this.scheduled = { kind: 'immediate', t: setImmediate(fire) };
    else this.scheduled = { kind: 'timeout', t: setTimeout(fire, wait).unref() };
  }

  /** Writes the status now (heartbeat, final write, errors); writes are serialized, failures reported. */
  publish(): Promise<void> {
    this.cancelScheduled();
    this.lastWriteAt = this.nowMs();
    this.status.heartbeatAt = this.date();
    // What is written is what holds now, even if the write waits for the one before it.
    const snapshot = { ...this.status };
    const history = this.history.json();
    this.writing = this.writing.then(async () => {
      if (!this.kv) return;
      try {
        const value = encodeNodeStatus(snapshot, this.opts.extra?.(), history);
        await this.kv.put(nodeStatusKey(snapshot.node), value);
      } catch (err) {
        this.opts.onPutError?.(err as Error);
      }
    });
    return this.writing;
  }

  /** The last write: drops a scheduled one and writes now; changed() does nothing afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    await this.publish();
  }

  private cancelScheduled(): void {
    const s = this.scheduled;
    this.scheduled = undefined;
    if (s?.kind === 'timeout') clearTimeout(s.t);
    else if (s?.kind === 'immediate') clearImmediate(s.t);
  }

  private nowMs(): number {
    return (this.opts.now ?? Date.now)();
  }
}
