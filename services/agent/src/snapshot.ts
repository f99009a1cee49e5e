import { type MeshState, refKey, type StoredResource } from '@meshplane/domain';
import { z } from 'zod';

/** The state an agent starts from: every resource at `revision` (`GET /v1/snapshot`). */
export interface Snapshot {
  revision: number;
  state: MeshState;
}

export type SnapshotSource = () => Promise<Snapshot>;

const ResourceSchema = z.object({
  kind: z.string(),
  namespace: z.string(),
  name: z.string(),
  spec: z.record(z.string(), z.unknown()),
  version: z.number().int().nonnegative(),
  origin: z.string().optional(),
});

const SnapshotSchema = z.object({
  revision: z.number().int().nonnegative(),
  resources: z.array(ResourceSchema),
});

export function stateFromResources(revision: number, resources: readonly StoredResource[]): MeshState {
  const state: MeshState = { revision, resources: new Map() };
  for (const r of resources) state.resources.set(refKey(r), r);
  return state;
}

/** Parses the API's snapshot body (`{ cluster, revision, hash, resources }`; extra fields ignored). */
export function parseSnapshot(body: unknown): Snapshot {
  const r = SnapshotSchema.safeParse(body);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new Error(`invalid snapshot at ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return {
    revision: r.data.revision,
    state: stateFromResources(r.data.revision, r.data.resources as StoredResource[]),
  };
}

/** `GET <api>/v1/snapshot` with a bearer token, bounded by a timeout. */
export function httpSnapshotSource(apiUrl: string, token?: string, timeoutMs = 30_000): SnapshotSource {
  return async () => {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(`${apiUrl}/v1/snapshot`, { headers, signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      throw new Error(`GET ${apiUrl}/v1/snapshot: HTTP ${res.status} ${text.slice(0, 300)}`);
    }
    return parseSnapshot(await res.json());
  };
}
