/*
 * Mesh resources for e2e requests, loopback only as DESIGN.md requires. Service and Workload
 * builders differ per suite (node, weight); routes and policies are the same everywhere.
 */

/** A Route of `svc` splitting traffic by `version` label: `{ v1: 90, v2: 10 }`. */
export function route(name: string, svc: string, weights: Record<string, number>) {
  return {
    kind: 'Route',
    name,
    spec: {
      service: svc,
      backends: Object.entries(weights).map(([version, weight]) => ({
        selector: { app: svc, version },
        weight,
      })),
    },
  };
}

/** An L4 AuthorizationPolicy of `svc` for callers with one of `identities`. */
export function policy(name: string, svc: string, action: 'ALLOW' | 'DENY', identities: string[]) {
  return {
    kind: 'AuthorizationPolicy',
    name,
    spec: { service: svc, action, from: identities.map((identity) => ({ identity })) },
  };
}
