/*
 * meshctl as operators run it: the BUILT CLI (`node bin/meshctl`, so `npm run build`
 * first; `npm test` does) as a child process, against a real API over loopback
 * HTTP and a real, freshly migrated Postgres database.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type ApiHarness, startApi } from '../api/api-harness';
import {
  expectExit,
  type MeshctlOptions,
  type MeshctlResult,
  requireBuiltMeshctl,
  runMeshctl,
} from '../harness/meshctl';
import { freePort } from '../harness/ports';

const BOOKINFO = path.join(__dirname, '../../examples/bookinfo.yaml');

let api: ApiHarness;
let tmp: string;

/** `node bin/meshctl ...argv` as the API's admin (the API serves from this same process). */
function meshctl(
  argv: string[],
  opts: Omit<MeshctlOptions, 'server' | 'token'> = {},
): Promise<MeshctlResult> {
  return runMeshctl(argv, { server: api.url, token: api.adminToken, ...opts });
}

async function head(): Promise<number> {
  const res = await fetch(`${api.url}/v1/revisions?limit=1`, {
    headers: { authorization: `Bearer ${api.adminToken}` },
  });
  return ((await res.json()) as { headRevision: number }).headRevision;
}

/** `get -o yaml` without its `# revision N` comment: the manifests only. */
const manifests = (yaml: string) => yaml.replace(/^# revision \d+\n/, '');

beforeAll(async () => {
  requireBuiltMeshctl();
  tmp = mkdtempSync(path.join(tmpdir(), 'meshctl-e2e-'));
  api = await startApi('meshctl', { logSink: () => undefined });
});

afterAll(async () => {
  await api?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// The steps build on each other: one mesh, one history.
describe('meshctl against a running API', () => {
  test('apply examples/bookinfo.yaml: one revision with every resource', async () => {
    const r = await meshctl(['apply', '-f', BOOKINFO, '--reason', 'bookinfo demo']);
    expectExit(r, 0);
    expect(r.stdout).toContain('Service default/productpage created');
    expect(r.stdout).toContain('AuthorizationPolicy default/ratings-allow created');
    expect(r.stdout).toContain('applied as revision 1 (12 events');
    expect(await head()).toBe(1);
  });

  test('get: tables by default, kind aliases, one resource', async () => {
    const all = await meshctl(['get']);
    expectExit(all, 0);
    for (const name of [
      'service/productpage',
      'workload/reviews-v3',
      'route/reviews',
      'authorizationpolicy/ratings-allow',
    ])
      expect(all.stdout).toContain(name);

    const svcs = await meshctl(['get', 'svc']);
    expectExit(svcs, 0);
    expect(svcs.stdout.trim().split('\n')).toHaveLength(5);
    expect(svcs.stdout).toMatch(/default\s+ratings\s+127\.100\.0\.3\s+9080\/TCP\s+app=ratings\s+1/);

    const route = await meshctl(['get', 'route', 'reviews']);
    expectExit(route, 0);
    expect(route.stdout).toContain(
      '80% app=reviews,version=v1; 10% app=reviews,version=v2; 10% app=reviews,version=v3',
    );

    const policy = await meshctl(['get', 'authz', 'ratings-allow', '-o', 'json']);
    expectExit(policy, 0);
    expect(JSON.parse(policy.stdout)).toMatchObject({
      kind: 'AuthorizationPolicy',
      spec: {
        action: 'ALLOW',
        from: [{ identity: 'bookinfo-productpage' }, { identity: 'bookinfo-reviews' }],
      },
    });
  });

  test('get -o yaml round trip: applying the output changes nothing', async () => {
    const yaml = await meshctl(['get', '-o', 'yaml']);
    expectExit(yaml, 0);
    expect(yaml.stdout.startsWith('# revision 1\n')).toBe(true);
    expect(yaml.stdout).not.toMatch(/^\s*version: \d+$/m);

    const again = await meshctl(['apply', '-f', '-', '--reason', 'round trip'], { stdin: yaml.stdout });
    expectExit(again, 0);
    expect(again.stdout).toContain('no changes: all 12 resources match revision 1; nothing written');
    expect(await head()).toBe(1);

    const json = await meshctl(['get', '-o', 'json']);
    const fromJson = await meshctl(['apply', '-f', '-', '--reason', 'round trip'], { stdin: json.stdout });
    expectExit(fromJson, 0);
    expect(fromJson.stdout).toContain('no changes');
    expect(await head()).toBe(1);
  });

  test('apply --dry-run shows the change and writes nothing', async () => {
    const canary = `kind: Route
name: reviews
spec:
  service: reviews
  backends:
    - selector: {app: reviews, version: v1}
      weight: 50
    - selector: {app: reviews, version: v3}
      weight: 50
`;
    writeFileSync(path.join(tmp, 'canary.yaml'), canary);
    const dry = await meshctl(['apply', '-f', path.join(tmp, 'canary.yaml'), '--dry-run']);
    expectExit(dry, 0);
    expect(dry.stdout).toContain('Route default/reviews configured (dry run)');
    expect(dry.stdout).toContain('-       weight: 80');
    expect(dry.stdout).toContain(
      'dry run against revision 1: 0 to create, 1 to configure, 0 unchanged; nothing written',
    );
    expect(await head()).toBe(1);

    const real = await meshctl(['apply', '-f', path.join(tmp, 'canary.yaml')], {
      env: { MESH_REASON: 'canary v3' },
    });
    expectExit(real, 0);
    expect(real.stdout).toContain('Route default/reviews configured\napplied as revision 2 (1 event');
  });

  test('diff exit codes: 0 without differences, 1 with, 2 on error', async () => {
    const none = await meshctl(['diff', '2', '2']);
    expectExit(none, 0);
    expect(none.stdout).toContain('no differences');

    const some = await meshctl(['diff', '1', '2']);
    expectExit(some, 1);
    expect(some.stdout).toContain('~ Route default/reviews (changed)');
    expect(some.stdout).toContain('-       weight: 80');
    expect(some.stdout).toContain('+       weight: 50');
    expect(some.stdout).toContain('0 added, 1 changed, 0 removed');

    expectExit(await meshctl(['diff', '0']), 1);
    const missing = await meshctl(['diff', '1', '999']);
    expectExit(missing, 2);
    expect(missing.stderr).toContain('[404 NOT_FOUND]');
    expectExit(await meshctl(['diff', 'one', 'two']), 2);
  });

  test('delete, history and show', async () => {
    const del = await meshctl(['delete', 'policy', 'ratings-allow', '--reason', 'open ratings']);
    expectExit(del, 0);
    expect(del.stdout).toContain('AuthorizationPolicy default/ratings-allow deleted\ndeleted as revision 3');

    const gone = await meshctl(['delete', 'policy', 'ratings-allow', '--reason', 'again']);
    expectExit(gone, 1);
    expect(gone.stderr).toContain('not found at revision 3');

    const refused = await meshctl(['delete', 'svc', 'reviews', '--reason', 'still routed']);
    expectExit(refused, 1);
    expect(refused.stderr).toMatch(/delete\[0\] \(Service default\/reviews\): .*Route default\/reviews/);

    const history = await meshctl(['history']);
    expectExit(history, 0);
    const rows = history.stdout.trim().split('\n');
    expect(rows).toHaveLength(4);
    expect(rows[1]).toMatch(/^1\s.*bookinfo demo$/);
    expect(rows[3]).toMatch(/^3\s.*open ratings$/);

    const show = await meshctl(['show', '2']);
    expectExit(show, 0);
    expect(show.stdout).toMatch(/^Reason:\s+canary v3$/m);
    expect(show.stdout).toMatch(/0\s+configured\s+Route\s+default\s+reviews\s+1/);

    const routeHistory = await meshctl(['history', 'route', 'reviews']);
    expectExit(routeHistory, 0);
    expect(routeHistory.stdout).toMatch(/1\s.*created\s+bookinfo demo/);
    expect(routeHistory.stdout).toMatch(/2\s.*configured\s+canary v3/);
  });

  test('get --revision shows the past', async () => {
    const past = await meshctl(['get', 'authz', '--revision', '2']);
    expectExit(past, 0);
    expect(past.stdout).toContain('ratings-allow');
    const now = await meshctl(['get', 'authz']);
    expectExit(now, 0);
    expect(now.stdout).toBe('');
    expect(now.stderr).toContain('No AuthorizationPolicy resources found at revision 3');
  });

  test('rollback: dry run, then a new revision with the old state; audit names it', async () => {
    const dry = await meshctl(['rollback', '--to', '1', '--dry-run']);
    expectExit(dry, 0);
    expect(dry.stdout).toContain('+ AuthorizationPolicy default/ratings-allow (added)');
    expect(dry.stdout).toContain('~ Route default/reviews (changed)');
    expect(await head()).toBe(3);

    expectExit(await meshctl(['rollback', '--to', '1']), 2);
    const rb = await meshctl(['rollback', '--to', '1', '--reason', 'canary went bad']);
    expectExit(rb, 0);
    expect(rb.stdout).toContain('rolled back to the state of revision 1 as new revision 4 (2 events)');

    expectExit(await meshctl(['diff', '1', '4']), 0);
    const [now, then] = await Promise.all([
      meshctl(['get', '-o', 'yaml']),
      meshctl(['get', '-o', 'yaml', '--revision', '1']),
    ]);
    expect(manifests(now.stdout)).toBe(manifests(then.stdout));

    const noop = await meshctl(['rollback', '--to', '4', '--reason', 'no-op']);
    expectExit(noop, 0);
    expect(noop.stdout).toContain('nothing written');
    expect(await head()).toBe(4);

    const audit = await meshctl(['audit', '--kind', 'route']);
    expectExit(audit, 0);
    expect(audit.stdout).toMatch(/rollback\s+\S+\s+4\s+2\s+to revision 1: canary went bad/);
    const hist = await meshctl(['history']);
    expect(hist.stdout).toMatch(/\n4\s.*\s1\s+[0-9a-f]{12}\s+canary went bad/);
  });

  test('a bad resource: exit 1, every field path with its file and line, nothing written', async () => {
    const bad = `kind: Service
name: broken
spec:
  vip: 127.100.0.300
  ports:
    - port: 0
      protocol: TCP
  selector: {app: broken}
  selecter: {app: typo}
---
kind: Route
name: dangling
spec:
  service: nowhere
  backends: [{selector: {app: x}, weight: 1}]
`;
    const file = path.join(tmp, 'bad.yaml');
    writeFileSync(file, bad);
    const r = await meshctl(['apply', '-f', file, '--reason', 'should fail']);
    expectExit(r, 1);
    expect(r.stderr).toMatch(/^error: .*\[400 INVALID\]/);
    expect(r.stderr).toContain(
      `apply[0].spec.vip (${file}:1, Service default/broken): must be an IPv4 address`,
    );
    expect(r.stderr).toContain(
      `apply[0].spec.ports[0].port (${file}:1, Service default/broken): must be an integer between 1 and 65535`,
    );
    expect(r.stderr).toContain(`apply[0].spec.selecter (${file}:1, Service default/broken): unknown field`);
    expect(await head()).toBe(4);

    const dangling = await meshctl(['apply', '-f', '-', '--reason', 'should fail'], {
      stdin: bad.split('---\n')[1],
    });
    expectExit(dangling, 1);
    expect(dangling.stderr).toContain(
      'apply[0].spec.service (<stdin>:1, Route default/dangling): Service default/nowhere does not exist',
    );
    expect(await head()).toBe(4);
  });

  test('idempotency key: a repeated apply is applied at most once', async () => {
    const doc =
      'kind: Service\nname: extra\nspec: {vip: 127.100.0.9, ports: [{port: 9080, protocol: TCP}], selector: {app: extra}}\n';
    const args = ['apply', '-f', '-', '--reason', 'extra', '--idempotency-key', 'e2e-extra-1'];
    const first = await meshctl(args, { stdin: doc });
    expectExit(first, 0);
    expect(first.stdout).toContain('applied as revision 5');
    const second = await meshctl(args, { stdin: doc });
    expectExit(second, 0);
    expect(second.stdout).toContain('applied as revision 5');
    expect(await head()).toBe(5);
  });

  test('auth and connection errors', async () => {
    const badToken = await meshctl(['get'], { env: { MESH_TOKEN: 'not-a-real-token' } });
    expectExit(badToken, 1);
    expect(badToken.stderr).toContain('[401 UNAUTHENTICATED]');
    expect(badToken.stderr).toContain('headers.authorization');

    const created = await fetch(`${api.url}/v1/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${api.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'e2e-viewer', role: 'viewer' }),
    });
    expect(created.status).toBe(201);
    const viewer = ((await created.json()) as { token: string }).token;
    expectExit(await meshctl(['get', 'svc'], { env: { MESH_TOKEN: viewer } }), 0);
    const write = await meshctl(['delete', 'svc', 'extra', '--reason', 'viewer'], {
      env: { MESH_TOKEN: viewer },
    });
    expectExit(write, 1);
    expect(write.stderr).toContain('[403 FORBIDDEN]');

    const closed = `http://127.0.0.1:${await freePort()}`;
    const down = await meshctl(['get'], { env: { MESH_SERVER: closed } });
    expectExit(down, 1);
    expect(down.stderr).toContain(`cannot reach the API at ${closed} (ECONNREFUSED)`);

    const usage = await meshctl(['apply', '-f', BOOKINFO]);
    expectExit(usage, 2);
    expect(usage.stderr).toContain('needs a reason');
  });

  test('verify: the hash chain holds', async () => {
    const r = await meshctl(['verify']);
    expectExit(r, 0);
    expect(r.stdout).toMatch(
      /^hash chain OK: revisions 1\.\.5 verified; head revision 5, hash [0-9a-f]{64}\n$/,
    );
  });
});
