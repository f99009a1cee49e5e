import type { CommittedEvent, StoredResource } from '@meshplane/domain';
import type { ChangeSetsTable, EventsTable, ResourcesTable } from './schema';
import type { ChangeSet, ChangeSetHeader } from './types';

type Row<T> = {
  [K in keyof T]: T[K] extends import('kysely').ColumnType<infer S, unknown, unknown> ? S : T[K];
};

export type ChangeSetRow = Row<ChangeSetsTable>;
export type EventRow = Row<EventsTable>;
export type ResourceRow = Row<ResourcesTable>;

export function toEvent(row: EventRow): CommittedEvent {
  const e: CommittedEvent = {
    revision: row.revision,
    seq: row.seq,
    kind: row.kind,
    namespace: row.namespace,
    name: row.name,
    op: row.op,
    prevVersion: row.prev_version,
  };
  if (row.op === 'put') e.spec = row.spec ?? {};
  if (row.origin !== null) e.origin = row.origin;
  return e;
}

export function toHeader(row: ChangeSetRow): ChangeSetHeader & { idempotencyFingerprint: string | null } {
  return {
    revision: row.revision,
    changeId: row.change_id,
    cluster: row.cluster,
    actor: row.actor,
    reason: row.reason,
    requestId: row.request_id,
    idempotencyKey: row.idempotency_key,
    idempotencyFingerprint: row.idempotency_fingerprint,
    traceContext: row.trace_context,
    restoredFromRevision: row.restored_from_revision,
    metadata: row.metadata ?? {},
    createdAt: row.created_at,
    eventCount: row.event_count,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

/** Public shape: the fingerprint is an implementation detail of idempotency. */
export function toChangeSet(row: ChangeSetRow, events: CommittedEvent[]): ChangeSet {
  const { idempotencyFingerprint: _f, ...header } = toHeader(row);
  return { ...header, events };
}

export function stripHeader(row: ChangeSetRow): ChangeSetHeader {
  const { idempotencyFingerprint: _f, ...header } = toHeader(row);
  return header;
}

export function toStoredResource(row: ResourceRow): StoredResource {
  const r: StoredResource = {
    kind: row.kind,
    namespace: row.namespace,
    name: row.name,
    spec: row.spec,
    version: row.version,
  };
  if (row.origin !== null) r.origin = row.origin;
  return r;
}
