import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  applyChanges,
  type Change,
  emptyState,
  isIPv4,
  parseResource,
  validateChangeSet,
  viewOf,
} from '@meshplane/domain';
import { parseManifests } from './manifests';

const FILE = path.join(__dirname, '../../../examples/bookinfo.yaml');
const docs = parseManifests(readFileSync(FILE, 'utf8'), 'bookinfo.yaml');
const resources = docs.map((d, i) => parseResource(d.value, `apply[${i}]`));
const byName = (kind: string, name: string) => resources.find((r) => r.kind === kind && r.name === name)!;

describe('examples/bookinfo.yaml', () => {
  test('every document is a valid resource, and together they are a valid change set on an empty mesh', () => {
    expect(docs).toHaveLength(12);
    const changes: Change[] = resources.map((r) => ({ op: 'put', ...r }));
    expect(() => validateChangeSet(viewOf(emptyState()), changes)).not.toThrow();
    expect(applyChanges(emptyState(), changes, 1).resources.size).toBe(12);
  });

  test('has the bookinfo services, workloads, route and policy', () => {
    const names = (kind: string) => resources.filter((r) => r.kind === kind).map((r) => r.name);
    expect(names('Service')).toEqual(['productpage', 'details', 'ratings', 'reviews']);
    expect(names('Workload')).toEqual([
      'productpage-v1',
      'details-v1',
      'ratings-v1',
      'reviews-v1',
      'reviews-v2',
      'reviews-v3',
    ]);
    expect(names('Route')).toEqual(['reviews']);
    expect(names('AuthorizationPolicy')).toEqual(['ratings-allow']);
  });

  test('only loopback: VIPs in 127.100.0.0/16, workloads on 127.0.1.x', () => {
    for (const r of resources) {
      if (r.kind === 'Service') expect(String(r.spec.vip)).toMatch(/^127\.100\.\d+\.\d+$/);
      if (r.kind === 'Workload') expect(String(r.spec.address)).toMatch(/^127\.0\.1\.\d+$/);
    }
    const ips = resources
      .map((r) => r.spec.vip ?? r.spec.address)
      .filter((v): v is string => typeof v === 'string');
    expect(ips).toHaveLength(10);
    expect(ips.every(isIPv4)).toBe(true);
    expect(new Set(ips).size).toBe(10);
  });

  test('reviews is split 80/10/10 across v1/v2/v3, and every subset has a workload', () => {
    const route = byName('Route', 'reviews');
    const backends = route.spec.backends as { selector: Record<string, string>; weight: number }[];
    expect(backends.map((b) => [b.selector.version, b.weight])).toEqual([
      ['v1', 80],
      ['v2', 10],
      ['v3', 10],
    ]);
    for (const b of backends) {
      const matches = resources.filter(
        (r) =>
          r.kind === 'Workload' &&
          Object.entries(b.selector).every(([k, v]) => (r.spec.labels as Record<string, string>)[k] === v),
      );
      expect(matches).toHaveLength(1);
    }
  });

  test('only productpage and reviews may call ratings', () => {
    const policy = byName('AuthorizationPolicy', 'ratings-allow');
    expect(policy.spec).toMatchObject({
      service: 'ratings',
      action: 'ALLOW',
      from: [{ identity: 'bookinfo-productpage' }, { identity: 'bookinfo-reviews' }],
    });
    const identities = new Set(resources.filter((r) => r.kind === 'Workload').map((r) => r.spec.identity));
    for (const f of policy.spec.from as { identity: string }[]) expect(identities.has(f.identity)).toBe(true);
  });

  test('every Service selects at least one workload', () => {
    for (const svc of resources.filter((r) => r.kind === 'Service')) {
      const sel = svc.spec.selector as Record<string, string>;
      const selected = resources.filter(
        (r) =>
          r.kind === 'Workload' &&
          Object.entries(sel).every(([k, v]) => (r.spec.labels as Record<string, string>)[k] === v),
      );
      expect(selected.length).toBeGreaterThan(0);
    }
  });
});
