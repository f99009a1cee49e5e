import type { ApplyOutcome } from '@meshplane/dataplane';
import {
  type AgentState,
  type AppliedRecord,
  encodeNodeStatus,
  type NodeStatus,
  nodeStatusKey,
  putNodeStatus,
} from '@meshplane/messaging';
import type { KV } from '@nats-io/kv';

/*
 * The node's status value in the KV bucket (key = node), rewritten after every
 * apply attempt and on each heartbeat. Per-revision applied times live in
 * `recentApplies` (bounded, newest last): coalesced revisions share one record,
 * so "when did this node apply R" is the first record with revision >= R; that
 * is what the propagation endpoint reads. Nothing about sync state (SYNCED,
 * STALE, OFFLINE) is stored: readers derive it from these facts and the head.
 */

export interface StatusReporterOptions {
  node: string;
  cluster: string;
  agentVersion: string;
  recentApplies: number;
  now?: () => number;
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
  const wire = JSON.parse(Buffer.from(encodeNodeStatus(status)).toString('utf8')) as Record<string, unknown>;
  for (const [k, v] of Object.entries(extra)) if (!(k in wire)) wire[k] = v;
  return Buffer.from(JSON.stringify(wire), 'utf8');
}

export class StatusReporter {
  private status: NodeStatus;
  private kv: KV | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly opts: StatusReporterOptions) {
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
      recentApplies: [],
    };
  }

  private date(ms?: number): Date {
    return new Date(ms ?? (this.opts.now ?? Date.now)());
  }

  attach(kv: KV): void {
    this.kv = kv;
  }

  current(): NodeStatus {
    return { ...this.status, recentApplies: [...(this.status.recentApplies ?? [])] };
  }

  /** What the maps held at start-up (the checkpoint), before anything is applied. */
  restored(revision: number, appliedAtMs: number | undefined): void {
    this.status.appliedRevision = revision;
    this.status.appliedAt = appliedAtMs ? this.date(appliedAtMs) : null;
  }

  setState(state: AgentState, error?: string): void {
    this.status.state = state;
    if (error !== undefined) {
      this.status.lastError = error;
      this.status.lastErrorAt = this.date();
    }
  }

  /** Folds one apply attempt (or full pass) into the status. */
  outcome(o: ApplyOutcome, stillBehind: boolean): void {
    const s = this.status;
    if (o.ok) {
      if (o.kind === 'apply' || o.revision !== s.appliedRevision) {
        const advanced = o.revision > s.appliedRevision;
        s.appliedRevision = o.revision;
        s.appliedAt = this.date(o.at);
        s.applyDurationMs = o.durationMs;
        s.ops = o.ops;
        if (advanced) {
          const rec: AppliedRecord = {
            revision: o.revision,
            appliedAt: this.date(o.at),
            durationMs: o.durationMs,
          };
          s.recentApplies = [...(s.recentApplies ?? []), rec].slice(-this.opts.recentApplies);
        }
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

  /** Writes the status now (heartbeat or after a change); writes are serialized, failures reported. */
  publish(): Promise<void> {
    this.status.heartbeatAt = this.date();
    const snapshot = this.current();
    this.writing = this.writing.then(async () => {
      if (!this.kv) return;
      try {
        const extra = this.opts.extra?.();
        if (extra) await this.kv.put(nodeStatusKey(snapshot.node), encodeStatusWithExtra(snapshot, extra));
        else await putNodeStatus(this.kv, snapshot);
      } catch (err) {
        this.opts.onPutError?.(err as Error);
      }
    });
    return this.writing;
  }
}
