/** The kinds of resource the mesh knows. */
export const KINDS = ['Service', 'Workload', 'Route', 'AuthorizationPolicy'] as const;
export type Kind = (typeof KINDS)[number];

export const DEFAULT_NAMESPACE = 'default';

/** Identifies one resource: kind, namespace, name. */
export interface ResourceRef {
  kind: string;
  namespace: string;
  name: string;
}

/** A resource as operators write it. `spec` is kind-specific and validated in `validate`. */
export interface Resource<S = Record<string, unknown>> extends ResourceRef {
  spec: S;
}

/** A resource as it stands in a state: with the revision that last changed it. */
export interface StoredResource extends Resource {
  /** Revision of the change set that last put this resource (etcd's mod_revision). */
  version: number;
  /** Cluster that owns the resource (federation); undefined for local resources. */
  origin?: string;
}

/** Stable string key of a resource reference: `Kind/namespace/name`. */
export function refKey(ref: ResourceRef): string {
  return `${ref.kind}/${ref.namespace}/${ref.name}`;
}

export function parseRefKey(key: string): ResourceRef {
  const [kind, namespace, name] = key.split('/');
  if (!kind || !namespace || !name) throw new Error(`malformed resource key: ${key}`);
  return { kind, namespace, name };
}
