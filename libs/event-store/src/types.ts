import type { Change, CommittedEvent, MeshState, StateView } from '@meshplane/domain';

export interface AppendOptions {
  actor: string;
  /** Why the change was made; required and non-empty. */
  reason: string;
  requestId?: string;
  /** Per actor: a repeated key returns the original result and writes nothing. */
  idempotencyKey?: string;
  /** Fingerprint of the request behind an idempotency key; a reuse with another fingerprint is a conflict. */
  idempotencyFingerprint?: string;
  /** W3C traceparent of the request that made the change. */
  traceContext?: string | null;
  /** Optimistic concurrency on the head revision. */
  expectedRevision?: number;
  /** Optimistic concurrency per resource, keyed by `refKey`; 0 means "must not exist". */
  expectedVersions?: Record<string, number>;
  /** Set by rollbacks: the revision whose state this change set restores. */
  restoredFromRevision?: number;
  /** Free-form metadata hashed with the change set (federation origin, peer revision...). */
  metadata?: Record<string, unknown>;
  /**
   * Runs inside the serialized append, against the current state, with the
   * effective changes (no-ops removed). Throwing aborts the append: nothing is written.
   */
  validate?: (current: StateView, changes: Change[]) => void;
  /**
   * Runs a query call with the caller's trace context active, so that an instrumented driver
   * (OpenTelemetry's pg) parents its spans to the caller's span in a process without an async
   * context. A group-committed batch runs its statements in its first append's scope.
   */
  traceScope?: <T>(fn: () => T) => T;
}

export interface ChangeSetHeader {
  revision: number;
  changeId: string;
  cluster: string;
  actor: string;
  reason: string;
  requestId: string | null;
  idempotencyKey: string | null;
  traceContext: string | null;
  restoredFromRevision: number | null;
  metadata: Record<string, unknown>;
  createdAt: Date;
  eventCount: number;
  prevHash: string;
  hash: string;
}

export interface ChangeSet extends ChangeSetHeader {
  events: CommittedEvent[];
}

export type AppendResult =
  | { status: 'appended'; changeSet: ChangeSet }
  /** Idempotency key seen before: the original change set, nothing written. */
  | { status: 'replayed'; changeSet: ChangeSet }
  /** Every put equals the current spec and every delete names nothing present. */
  | { status: 'unchanged'; headRevision: number };

export interface Head {
  revision: number;
  hash: string;
}

export type VerifyResult =
  | { ok: true; from: number; to: number; headRevision: number; headHash: string }
  | {
      ok: false;
      from: number;
      to: number;
      firstBadRevision: number;
      reason: string;
      expected: string;
      actual: string;
    };

export interface ChangeSetFilter {
  actor?: string;
  kind?: string;
  namespace?: string;
  name?: string;
  since?: Date;
  until?: Date;
  fromRevision?: number;
  limit?: number;
}

export interface ResourceHistoryEntry extends CommittedEvent {
  actor: string;
  reason: string;
  createdAt: Date;
}

export type { Change, CommittedEvent, MeshState, StateView };
