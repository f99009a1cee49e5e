import type { Change, CommittedEvent } from './events';
import { type ResourceRef, refKey, type StoredResource } from './resource';

/**
 * The desired state of the mesh at one revision: every resource by key. Treated
 * as immutable by `evolve`'s callers that need history; `evolveInPlace` exists
 * for replay loops where copying would dominate.
 */
export interface MeshState {
  revision: number;
  resources: Map<string, StoredResource>;
}

export function emptyState(): MeshState {
  return { revision: 0, resources: new Map() };
}

export function cloneState(state: MeshState): MeshState {
  return { revision: state.revision, resources: new Map(state.resources) };
}

/** Applies one committed event to `state`, mutating it. Pure in its inputs otherwise. */
export function evolveInPlace(state: MeshState, event: CommittedEvent): MeshState {
  const key = refKey(event);
  if (event.op === 'put') {
    const res: StoredResource = {
      kind: event.kind,
      namespace: event.namespace,
      name: event.name,
      spec: event.spec ?? {},
      version: event.revision,
    };
    if (event.origin !== undefined) res.origin = event.origin;
    state.resources.set(key, res);
  } else {
    state.resources.delete(key);
  }
  if (event.revision > state.revision) state.revision = event.revision;
  return state;
}

/** `(state, event) → state`: returns a new state; the input is left untouched. */
export function evolve(state: MeshState, event: CommittedEvent): MeshState {
  return evolveInPlace(cloneState(state), event);
}

export function getResource(state: MeshState, ref: ResourceRef): StoredResource | undefined {
  return state.resources.get(refKey(ref));
}

/** Resources sorted by key: a stable order for listings and encodings. */
export function listResources(state: MeshState, filter: Partial<ResourceRef> = {}): StoredResource[] {
  const out: StoredResource[] = [];
  for (const r of state.resources.values()) {
    if (filter.kind && r.kind !== filter.kind) continue;
    if (filter.namespace && r.namespace !== filter.namespace) continue;
    if (filter.name && r.name !== filter.name) continue;
    out.push(r);
  }
  return out.sort((a, b) => (refKey(a) < refKey(b) ? -1 : refKey(a) > refKey(b) ? 1 : 0));
}

/**
 * Applies requested changes as one revision (what an append would commit),
 * returning a new state. Used for dry runs, rollback previews and tests.
 */
export function applyChanges(state: MeshState, changes: readonly Change[], revision: number): MeshState {
  const next = cloneState(state);
  changes.forEach((c, seq) => {
    const prev = next.resources.get(refKey(c));
    const event: CommittedEvent = {
      kind: c.kind,
      namespace: c.namespace,
      name: c.name,
      op: c.op,
      prevVersion: prev ? prev.version : null,
      revision,
      seq,
    };
    if (c.op === 'put') {
      event.spec = c.spec;
      if (c.origin !== undefined) event.origin = c.origin;
    }
    evolveInPlace(next, event);
  });
  return next;
}
