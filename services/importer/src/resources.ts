import { emptyState, type MeshState, type ResourceRef, refKey, type StoredResource } from '@meshplane/domain';
import type { EventStore } from '@meshplane/event-store';

interface ResourceRow {
  kind: string;
  namespace: string;
  name: string;
  spec: unknown;
  version: number | string | bigint;
  origin: string | null;
}

function toStored(r: ResourceRow): StoredResource {
  const spec = (typeof r.spec === 'string' ? JSON.parse(r.spec) : r.spec) as Record<string, unknown>;
  const out: StoredResource = {
    kind: r.kind,
    namespace: r.namespace,
    name: r.name,
    spec,
    version: Number(r.version),
  };
  if (r.origin !== null) out.origin = r.origin;
  return out;
}

/** The part of the current state that `origin` owns (what importChanges compares against). */
export async function readImported(store: EventStore, origin: string): Promise<MeshState> {
  const rows = await store.db.selectFrom('resources').selectAll().where('origin', '=', origin).execute();
  const state = emptyState();
  for (const r of rows.map(toStored)) state.resources.set(refKey(r), r);
  return state;
}

/** The current resources at `refs`, by refKey (absent ones are missing from the map). */
export async function readResources(
  store: EventStore,
  refs: readonly ResourceRef[],
): Promise<Map<string, StoredResource>> {
  const out = new Map<string, StoredResource>();
  if (refs.length === 0) return out;
  const rows = await store.db
    .selectFrom('resources')
    .selectAll()
    .where((eb) =>
      eb.or(
        refs.map((r) =>
          eb.and([eb('kind', '=', r.kind), eb('namespace', '=', r.namespace), eb('name', '=', r.name)]),
        ),
      ),
    )
    .execute();
  for (const r of rows.map(toStored)) out.set(refKey(r), r);
  return out;
}
