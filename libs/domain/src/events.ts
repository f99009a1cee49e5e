import type { ResourceRef } from './resource';

/**
 * One event of a change set. Events carry state: a put holds the whole new spec,
 * a delete names what it removed, and both record the version they replaced, so
 * replay needs no lookups and a diff between revisions is exact.
 */
export interface MeshEvent extends ResourceRef {
  op: 'put' | 'delete';
  /** Whole new spec for `put`; absent for `delete`. */
  spec?: Record<string, unknown>;
  /** Version (revision) of the resource this event replaced; null when it did not exist. */
  prevVersion: number | null;
  /** Owning cluster for imported resources (federation). */
  origin?: string;
}

/** A committed event: position in the log plus the event. */
export interface CommittedEvent extends MeshEvent {
  revision: number;
  seq: number;
}

/** A requested change, before the store resolves versions: put a spec or delete a resource. */
export type Change =
  | (ResourceRef & { op: 'put'; spec: Record<string, unknown>; origin?: string })
  | (ResourceRef & { op: 'delete' });
