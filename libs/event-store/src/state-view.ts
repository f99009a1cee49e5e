import type { MeshState, ResourceRef, StoredResource } from '@meshplane/domain';
import { refKey } from '@meshplane/domain';
import type { StateView } from './types';

/** A read-only StateView over a MeshState (no copy). */
export function viewOfState(state: MeshState): StateView {
  return {
    get: (ref: ResourceRef) => state.resources.get(refKey(ref)),
    *list(kind?: string): Iterable<StoredResource> {
      for (const r of state.resources.values()) if (!kind || r.kind === kind) yield r;
    },
  };
}
