/*
 * Response shapes of the Meshplane API as they arrive over the wire (times are
 * ISO strings). Declared here because a service never imports another service.
 */

export interface ErrorDetail {
  path: string;
  message: string;
}

export interface ErrorBody {
  error: { code: string; message: string; details?: ErrorDetail[]; headRevision?: number };
}

/** A resource as operators write it (and as `get -o yaml` prints it). */
export interface ResourceDoc {
  kind: string;
  namespace: string;
  name: string;
  spec: Record<string, unknown>;
}

export interface StoredResource extends ResourceDoc {
  version: number;
  origin?: string;
}

export interface ResourcesResponse {
  revision: number;
  items: StoredResource[];
}

export interface ResourceResponse {
  revision: number;
  resource: StoredResource;
}

export interface WireEvent {
  kind: string;
  namespace: string;
  name: string;
  op: 'put' | 'delete';
  spec?: Record<string, unknown>;
  prevVersion: number | null;
  origin?: string;
  revision: number;
  seq: number;
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
  createdAt: string;
  eventCount: number;
  prevHash: string;
  hash: string;
}

export interface ChangeSet extends ChangeSetHeader {
  events: WireEvent[];
}

export interface RevisionsResponse {
  headRevision: number;
  items: ChangeSetHeader[];
  next: number | null;
}

export interface ResourceHistoryEntry extends WireEvent {
  actor: string;
  reason: string;
  createdAt: string;
}

export interface ResourceChange {
  kind: string;
  namespace: string;
  name: string;
  before: Record<string, unknown>;
  after: Record<string, unknown>;
  beforeOrigin?: string;
  afterOrigin?: string;
}

export interface DiffResource extends ResourceDoc {
  origin?: string;
}

export interface StateDiff {
  added: DiffResource[];
  removed: DiffResource[];
  changed: ResourceChange[];
}

export interface DiffResponse extends StateDiff {
  from: number;
  to: number;
}

/** 201 from POST /v1/changes or /v1/rollback. */
export interface WrittenResponse {
  revision: number;
  changeId: string;
  hash: string;
  events: WireEvent[];
  restoredFromRevision?: number;
}

/** 200 from POST /v1/changes or /v1/rollback: nothing to do. */
export interface UnchangedResponse {
  revision: number;
  unchanged: true;
}

export type WriteResponse = WrittenResponse | UnchangedResponse;

export interface RollbackDryRunResponse {
  dryRun: true;
  fromRevision: number;
  toRevision: number;
  unchanged: boolean;
  diff: StateDiff;
}

export interface ChangeAuditEntry {
  type: 'change';
  time: string;
  actor: string;
  revision: number;
  changeId: string;
  reason: string;
  requestId: string | null;
  idempotencyKey: string | null;
  traceContext: string | null;
  restoredFromRevision: number | null;
  eventCount: number;
  cluster: string;
  hash: string;
}

export interface TokenAuditEntry {
  type: 'token';
  time: string;
  actor: string;
  action: 'create' | 'revoke';
  tokenId: string;
  tokenName: string;
  role: string;
  requestId: string | null;
}

export type AuditEntry = ChangeAuditEntry | TokenAuditEntry;

export interface AuditResponse {
  items: AuditEntry[];
}

export type VerifyResponse =
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

export function isUnchanged(r: WriteResponse): r is UnchangedResponse {
  return (r as UnchangedResponse).unchanged === true;
}

export type NodeSyncState = 'SYNCED' | 'STALE' | 'ERROR' | 'OFFLINE';

/** One row of GET /v1/nodes. */
export interface NodeItem {
  node: string;
  state: NodeSyncState;
  appliedRevision: number;
  lagRevisions: number;
  lagSeconds: number | null;
  lastError: string | null;
  failedRevision: number | null;
  lastErrorAt: string | null;
  heartbeatAt: string;
  heartbeatAgeSeconds: number;
  appliedAt: string | null;
  applyDurationMs: number | null;
  ops: number;
  agentVersion: string;
  agentState: string | null;
  message: string | null;
}

export interface NodesResponse {
  cluster: string;
  headRevision: number;
  offlineAfterMs: number;
  items: NodeItem[];
}
