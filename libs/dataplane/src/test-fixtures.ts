import { applyChanges, type Change, emptyState, type MeshState } from '@meshplane/domain';

/*
 * Resource builders for dataplane and agent tests. Addresses follow the safety
 * rules: VIPs in 127.100.0.0/16, workloads on 127.0.1.x.
 */

type Port = { port: number; protocol: 'TCP' | 'UDP'; targetPort?: number };

export function service(
  name: string,
  vip: string,
  opts: { ports?: Port[]; selector?: Record<string, string>; namespace?: string } = {},
): Change {
  return {
    op: 'put',
    kind: 'Service',
    namespace: opts.namespace ?? 'default',
    name,
    spec: {
      vip,
      ports: opts.ports ?? [{ port: 80, protocol: 'TCP' }],
      selector: opts.selector ?? { app: name },
    },
  };
}

export function workload(
  name: string,
  address: string,
  node: string,
  opts: { labels?: Record<string, string>; identity?: string; weight?: number; namespace?: string } = {},
): Change {
  const spec: Record<string, unknown> = {
    address,
    node,
    labels: opts.labels ?? { app: name.replace(/-\d+$/, '') },
    identity: opts.identity ?? name.replace(/-\d+$/, ''),
  };
  if (opts.weight !== undefined) spec.weight = opts.weight;
  return { op: 'put', kind: 'Workload', namespace: opts.namespace ?? 'default', name, spec };
}

export function route(
  name: string,
  serviceName: string,
  backends: Array<{ selector: Record<string, string>; weight: number }>,
  namespace = 'default',
): Change {
  return { op: 'put', kind: 'Route', namespace, name, spec: { service: serviceName, backends } };
}

export function policy(
  name: string,
  serviceName: string,
  action: 'ALLOW' | 'DENY',
  identities: string[],
  opts: { ports?: number[]; namespace?: string } = {},
): Change {
  const spec: Record<string, unknown> = {
    service: serviceName,
    action,
    from: identities.map((identity) => ({ identity })),
  };
  if (opts.ports) spec.ports = opts.ports;
  return { op: 'put', kind: 'AuthorizationPolicy', namespace: opts.namespace ?? 'default', name, spec };
}

export function remove(kind: string, name: string, namespace = 'default'): Change {
  return { op: 'delete', kind, namespace, name };
}

/** The state after applying `changes` as one revision on top of `base`. */
export function stateOf(
  changes: Change[],
  base: MeshState = emptyState(),
  revision = base.revision + 1,
): MeshState {
  return applyChanges(base, changes, revision);
}
