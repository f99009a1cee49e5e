import { canonicalJson, type MeshState, type StoredResource } from '@meshplane/domain';
import type { Kysely } from 'kysely';
import { sha256Hex } from './hashing';
import type { LogDatabase } from './schema';

/** One resource in a snapshot: a compact tuple keeps 10k-resource snapshots small to parse. */
type SnapshotEntry = [
  kind: string,
  namespace: string,
  name: string,
  version: number,
  origin: string | null,
  spec: unknown,
];

/** Canonical text of a state: what is stored and hashed. */
export function encodeSnapshot(state: MeshState): string {
  const keys = [...state.resources.keys()].sort();
  const entries: SnapshotEntry[] = keys.map((k) => {
    const r = state.resources.get(k)!;
    return [r.kind, r.namespace, r.name, r.version, r.origin ?? null, r.spec];
  });
  return canonicalJson({ revision: state.revision, resources: entries });
}

export function decodeSnapshot(content: string): MeshState {
  const parsed = JSON.parse(content) as { revision: number; resources: SnapshotEntry[] };
  const resources = new Map<string, StoredResource>();
  for (const [kind, namespace, name, version, origin, spec] of parsed.resources) {
    const r: StoredResource = { kind, namespace, name, version, spec: spec as Record<string, unknown> };
    if (origin !== null) r.origin = origin;
    resources.set(`${kind}/${namespace}/${name}`, r);
  }
  return { revision: parsed.revision, resources };
}

export interface SnapshotInfo {
  revision: number;
  contentHash: string;
  resourceCount: number;
}

/** Snapshots are a read model: they can be dropped and rebuilt by replay at any time. */
export class SnapshotRepository {
  constructor(private readonly db: Kysely<LogDatabase>) {}

  async latestAtOrBelow(revision: number): Promise<MeshState | undefined> {
    const row = await this.db
      .selectFrom('snapshots')
      .select(['revision', 'content', 'content_hash'])
      .where('revision', '<=', revision)
      .orderBy('revision', 'desc')
      .limit(1)
      .executeTakeFirst();
    if (!row) return undefined;
    // A corrupted snapshot is skipped, not trusted: replay from an older one still gives the truth.
    if (sha256Hex(row.content) !== row.content_hash) {
      return revision > 0 ? this.latestAtOrBelow(row.revision - 1) : undefined;
    }
    return decodeSnapshot(row.content);
  }

  async write(state: MeshState, changeSetHash: string): Promise<SnapshotInfo> {
    const content = encodeSnapshot(state);
    const info = {
      revision: state.revision,
      contentHash: sha256Hex(content),
      resourceCount: state.resources.size,
    };
    await this.db
      .insertInto('snapshots')
      .values({
        revision: info.revision,
        change_set_hash: changeSetHash,
        content_hash: info.contentHash,
        resource_count: info.resourceCount,
        content,
      })
      .onConflict((oc) => oc.column('revision').doNothing())
      .execute();
    return info;
  }

  async list(): Promise<SnapshotInfo[]> {
    const rows = await this.db
      .selectFrom('snapshots')
      .select(['revision', 'content_hash', 'resource_count'])
      .orderBy('revision')
      .execute();
    return rows.map((r) => ({
      revision: r.revision,
      contentHash: r.content_hash,
      resourceCount: r.resource_count,
    }));
  }

  async dropAll(): Promise<void> {
    await this.db.deleteFrom('snapshots').execute();
  }
}
