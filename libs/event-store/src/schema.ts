import type { ColumnType } from 'kysely';

/** Kysely table types for the log (see migrations/0001_event_log.ts). */
export interface MeshHeadTable {
  id: boolean;
  revision: number;
  hash: string;
}

export interface ChangeSetsTable {
  revision: number;
  change_id: string;
  cluster: string;
  actor: string;
  reason: string;
  request_id: string | null;
  idempotency_key: string | null;
  idempotency_fingerprint: string | null;
  trace_context: string | null;
  restored_from_revision: number | null;
  metadata: ColumnType<Record<string, unknown>, string, string>;
  event_count: number;
  created_at: Date;
  prev_hash: string;
  hash: string;
}

export interface EventsTable {
  revision: number;
  seq: number;
  kind: string;
  namespace: string;
  name: string;
  op: 'put' | 'delete';
  spec: ColumnType<Record<string, unknown> | null, string | null, string | null>;
  prev_version: number | null;
  origin: string | null;
}

export interface ResourcesTable {
  kind: string;
  namespace: string;
  name: string;
  spec: ColumnType<Record<string, unknown>, string, string>;
  version: number;
  origin: string | null;
}

export interface SnapshotsTable {
  revision: number;
  change_set_hash: string;
  content_hash: string;
  resource_count: number;
  content: string;
  created_at: ColumnType<Date, Date | undefined, never>;
}

export interface LogDatabase {
  mesh_head: MeshHeadTable;
  change_sets: ChangeSetsTable;
  events: EventsTable;
  resources: ResourcesTable;
  snapshots: SnapshotsTable;
}
