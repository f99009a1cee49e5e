import type { NodeStatus } from '@meshplane/messaging';

/*
 * Pure derivations from what agents report (NodeStatus, facts only) plus what the API knows (the
 * head revision, commit times, its clock). No I/O, so every rule is unit-tested; the service only
 * gathers inputs. The sync state is derived by the reader, never stored, because it depends on
 * the head and on the reader's clock.
 */

export const NODE_STATES = ['SYNCED', 'STALE', 'ERROR', 'OFFLINE'] as const;
export type NodeSyncState = (typeof NODE_STATES)[number];

/** One row of `GET /v1/nodes`, like a line of `istioctl proxy-status`, but by revision. */
export interface NodeView {
  node: string;
  state: NodeSyncState;
  appliedRevision: number;
  /** Revisions the node is behind the head (negative: it reports a revision beyond the head). */
  lagRevisions: number;
  /** Since the first revision the node has not applied was committed; 0 when caught up. */
  lagSeconds: number | null;
  lastError: string | null;
  failedRevision: number | null;
  lastErrorAt: Date | null;
  heartbeatAt: Date;
  /** By the API's clock; what OFFLINE is decided on. */
  heartbeatAgeSeconds: number;
  appliedAt: Date | null;
  applyDurationMs: number | null;
  ops: number;
  agentVersion: string;
  /** The agent's own phase (STARTING, APPLYING, READY...), null from agents that do not say. */
  agentState: string | null;
  /** Why the node is in its state, for people; null when SYNCED. */
  message: string | null;
  /** The agent's data-plane facts (backend, pin dir, programs, repairs) as it reports them; null if it does not. */
  dataplane: Record<string, unknown> | null;
}

export interface DeriveInput {
  status: NodeStatus;
  headRevision: number;
  now: Date;
  offlineAfterMs: number;
  /** Commit times by revision; must hold `firstUnappliedRevision(status, head)` when there is one. */
  committedAt: ReadonlyMap<number, Date>;
}

/** The revision whose commit time `lagSeconds` counts from, or undefined when the node is not behind. */
export function firstUnappliedRevision(status: NodeStatus, headRevision: number): number | undefined {
  return status.appliedRevision < headRevision ? status.appliedRevision + 1 : undefined;
}

const seconds = (ms: number) => Math.round(ms) / 1000;
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The heartbeat is older than the timeout (by the reader's clock; a future heartbeat counts as fresh). */
export function isOffline(status: NodeStatus, now: Date, offlineAfterMs: number): boolean {
  return now.getTime() - status.heartbeatAt.getTime() > offlineAfterMs;
}

/**
 * Precedence: OFFLINE (whatever it last said, nobody is maintaining that node's maps) > ERROR
 * (reports a revision beyond the head, or is behind with an error) > SYNCED (at the head) >
 * STALE (behind, no error: it is catching up). An error on a node at the head is history: the
 * agent retried and succeeded, so it does not make the node ERROR.
 */
export function deriveNodeState(input: DeriveInput): NodeView {
  const { status: s, headRevision: head, now, offlineAfterMs } = input;
  const lagRevisions = head - s.appliedRevision;
  const firstMissing = firstUnappliedRevision(s, head);
  let lagSeconds: number | null = 0;
  if (firstMissing !== undefined) {
    const since = input.committedAt.get(firstMissing);
    lagSeconds = since ? seconds(Math.max(0, now.getTime() - since.getTime())) : null;
  }
  const ageMs = Math.max(0, now.getTime() - s.heartbeatAt.getTime());

  let state: NodeSyncState;
  let message: string | null;
  if (isOffline(s, now, offlineAfterMs)) {
    state = 'OFFLINE';
    message = `no heartbeat for ${seconds(ageMs)}s (offline after ${seconds(offlineAfterMs)}s)`;
  } else if (lagRevisions < 0) {
    // The node holds a state this log never had: another cluster's log, or a reset database.
    state = 'ERROR';
    message = `reports revision ${s.appliedRevision}, beyond the head ${head}: it follows another log (wrong cluster, or a reset database?)`;
  } else if (lagRevisions === 0) {
    state = 'SYNCED';
    message = null;
  } else if (s.lastError !== null) {
    state = 'ERROR';
    message = `revision ${s.failedRevision ?? firstMissing} failed to apply: ${s.lastError}`;
  } else {
    state = 'STALE';
    message = `${plural(lagRevisions, 'revision')} behind the head`;
  }

  return {
    node: s.node,
    state,
    appliedRevision: s.appliedRevision,
    lagRevisions,
    lagSeconds,
    lastError: s.lastError,
    failedRevision: s.failedRevision ?? null,
    lastErrorAt: s.lastErrorAt ?? null,
    heartbeatAt: s.heartbeatAt,
    heartbeatAgeSeconds: seconds(ageMs),
    appliedAt: s.appliedAt,
    applyDurationMs: s.applyDurationMs,
    ops: s.ops,
    agentVersion: s.agentVersion,
    agentState: s.state ?? null,
    message,
    dataplane: s.dataplane ?? null,
  };
}

// ----------------------------------------------------------------------------- propagation

export const PROPAGATION_STATES = ['APPLIED', 'PENDING', 'ERROR', 'OFFLINE'] as const;
export type PropagationState = (typeof PROPAGATION_STATES)[number];

/** How far one revision got on one node: a row of `GET /v1/revisions/:rev/propagation`. */
export interface NodePropagation {
  node: string;
  state: PropagationState;
  appliedRevision: number;
  /** When the node first held `revision`; null when not applied, or applied at an unknown time. */
  appliedAt: Date | null;
  /** appliedAt − committedAt; null when appliedAt is. */
  latencyMs: number | null;
  /** When the agent received `revision` from the stream; null unless it applied it on its own. */
  receivedAt: Date | null;
  /** e.g. "applied (time unknown)", the error, "at revision 4"; null for a plain APPLIED. */
  detail: string | null;
}

/**
 * When the node first held `revision`, from its `recentApplies` (one entry per apply; coalesced
 * revisions share the entry of the apply that reached them). The entry is the first one with
 * revision >= `revision`, but it is only trusted when the entry before it proves the node was
 * still below `revision` then. The oldest retained entry proves that only for its own revision:
 * the agent drops old entries, so an older revision may have been applied by a dropped entry,
 * earlier. Those cases, and agents that send no history, are `known: false` ("applied, time
 * unknown") rather than a wrong, too-late time. The status's own appliedAt is the time it reached
 * appliedRevision, so that revision is always known.
 */
export function appliedAtOf(
  status: NodeStatus,
  revision: number,
):
  | { applied: false }
  | { applied: true; known: true; at: Date; receivedAt: Date | null }
  | { applied: true; known: false } {
  if (status.appliedRevision < revision) return { applied: false };
  const history = [...(status.recentApplies ?? [])].sort((a, b) => a.revision - b.revision);
  const i = history.findIndex((a) => a.revision >= revision);
  const entry = history[i];
  if (entry && (i > 0 || entry.revision === revision)) {
    const receivedAt = entry.revision === revision ? (entry.receivedAt ?? null) : null;
    return { applied: true, known: true, at: entry.appliedAt, receivedAt };
  }
  // The last apply is the one that reached appliedRevision, whatever the history holds.
  if (status.appliedRevision === revision && status.appliedAt) {
    return { applied: true, known: true, at: status.appliedAt, receivedAt: null };
  }
  return { applied: true, known: false };
}

export interface PropagationInput {
  status: NodeStatus;
  revision: number;
  committedAt: Date;
  now: Date;
  offlineAfterMs: number;
}

/** Applied (whenever, even if the node is offline now) > OFFLINE > ERROR > PENDING. */
export function propagationOf(input: PropagationInput): NodePropagation {
  const { status: s, revision } = input;
  const base = { node: s.node, appliedRevision: s.appliedRevision };
  const a = appliedAtOf(s, revision);
  if (a.applied && a.known) {
    const latencyMs = a.at.getTime() - input.committedAt.getTime();
    return { ...base, state: 'APPLIED', appliedAt: a.at, latencyMs, receivedAt: a.receivedAt, detail: null };
  }
  if (a.applied) {
    return {
      ...base,
      state: 'APPLIED',
      appliedAt: null,
      latencyMs: null,
      receivedAt: null,
      detail: `applied (time unknown): the node is at revision ${s.appliedRevision} and its recent-apply history no longer shows when it reached ${revision}`,
    };
  }
  const pending = { ...base, appliedAt: null, latencyMs: null, receivedAt: null };
  if (isOffline(s, input.now, input.offlineAfterMs)) {
    const age = seconds(Math.max(0, input.now.getTime() - s.heartbeatAt.getTime()));
    return {
      ...pending,
      state: 'OFFLINE',
      detail: `at revision ${s.appliedRevision}; no heartbeat for ${age}s`,
    };
  }
  if (s.lastError !== null) {
    const failed = s.failedRevision ?? s.appliedRevision + 1;
    return { ...pending, state: 'ERROR', detail: `revision ${failed} failed to apply: ${s.lastError}` };
  }
  return { ...pending, state: 'PENDING', detail: `at revision ${s.appliedRevision}` };
}
