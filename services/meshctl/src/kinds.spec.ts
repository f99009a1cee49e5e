import { UsageError } from './errors';
import { lookupKind, resolveKind } from './kinds';

describe('kind names', () => {
  test.each([
    ['Service', 'Service'],
    ['service', 'Service'],
    ['SERVICES', 'Service'],
    ['svc', 'Service'],
    ['wl', 'Workload'],
    ['Workloads', 'Workload'],
    ['route', 'Route'],
    ['rt', 'Route'],
    ['authz', 'AuthorizationPolicy'],
    ['policy', 'AuthorizationPolicy'],
    ['Policies', 'AuthorizationPolicy'],
    ['authorizationpolicy', 'AuthorizationPolicy'],
    ['AuthorizationPolicy', 'AuthorizationPolicy'],
  ])('%s is %s', (input, kind) => {
    expect(resolveKind(input)).toBe(kind);
  });

  test('an unknown kind is a usage error that lists the kinds', () => {
    expect(lookupKind('pod')).toBeUndefined();
    expect(() => resolveKind('pod')).toThrow(UsageError);
    expect(() => resolveKind('pod')).toThrow(/Service \(services, svc\).*AuthorizationPolicy/);
  });
});
