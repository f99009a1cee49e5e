import path from 'node:path';
import { run } from './cli';
import { parseManifests } from './manifests';
import { captureIo, fakeServer, type Handler } from './testing/fake-io';

const BOOKINFO = path.join(__dirname, '../../../examples/bookinfo.yaml');

const svc = (name: string, vip: string, version = 1) => ({
  kind: 'Service',
  namespace: 'default',
  name,
  version,
  spec: { vip, ports: [{ port: 9080, protocol: 'TCP' }], selector: { app: name } },
});

const apiError = (
  status: number,
  code: string,
  message: string,
  details: { path: string; message: string }[] = [],
) => ({
  status,
  body: { error: { code, message, details } },
});

async function meshctl(
  argv: string[],
  handler: Handler = () => ({ status: 500, body: {} }),
  env: Record<string, string> = {},
  stdin = '',
) {
  const server = fakeServer(handler);
  const io = captureIo({ env, stdin, fetch: server.fetch });
  const code = await run(argv, io);
  return { code, stdout: io.stdout, stderr: io.stderr, requests: server.requests };
}

describe('usage', () => {
  test('no command: help on stderr, exit 2', async () => {
    const r = await meshctl([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Usage: meshctl');
  });

  test('--help and --version exit 0', async () => {
    const help = await meshctl(['--help']);
    expect([help.code, help.stdout]).toEqual([0, expect.stringContaining('MESH_TOKEN')]);
    const apply = await meshctl(['apply', '--help']);
    expect([apply.code, apply.stdout]).toEqual([0, expect.stringContaining('--dry-run')]);
    const v = await meshctl(['--version']);
    expect([v.code, v.stdout]).toEqual([0, expect.stringMatching(/^\d+\.\d+\.\d+\n$/)]);
  });

  test.each([
    [['nope']],
    [['get', '--bogus']],
    [['apply']],
    [['apply', '-f', 'x.yaml', '--expected-revision', 'abc']],
    [['get', 'svc', '--revision', '-1']],
    [['get', 'pods']],
    [['show', 'latest']],
    [['rollback', '--reason', 'r']],
    [['rollback', '--to', '0', '--reason', 'r']],
    [['get', '-o', 'xml']],
    [['--timeout', '0', 'verify']],
    [['--server', 'not a url', 'verify']],
    [['audit', '--since', 'yesterday']],
    [['audit', '--type', 'tokens']],
    [['history', 'svc']],
    [['delete', 'svc']],
  ])('%j is a usage error (exit 2) and sends nothing', async (argv) => {
    const r = await meshctl(argv);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error/);
    expect(r.requests).toHaveLength(0);
  });

  test.each([[['apply', '-f', BOOKINFO]], [['delete', 'svc', 'x']], [['rollback', '--to', '1']]])(
    '%j without --reason or MESH_REASON is refused before any request',
    async (argv) => {
      const r = await meshctl(argv);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('needs a reason');
      expect(r.stderr).toContain('--reason');
      expect(r.stderr).toContain('MESH_REASON');
      expect(r.requests).toHaveLength(0);
    },
  );
});

describe('server and token', () => {
  const ok: Handler = () => ({
    status: 200,
    body: { ok: true, from: 1, to: 0, headRevision: 0, headHash: '0' },
  });

  test('default server, no token', async () => {
    const r = await meshctl(['verify'], ok);
    expect(r.requests[0]!.url.origin).toBe('http://127.0.0.1:8080');
    expect(r.requests[0]!.headers.authorization).toBeUndefined();
  });

  test('MESH_SERVER and MESH_TOKEN, overridden by --server and --token', async () => {
    const env = { MESH_SERVER: 'http://127.0.0.2:9000', MESH_TOKEN: 'env-token' };
    const a = await meshctl(['verify'], ok, env);
    expect(a.requests[0]!.url.origin).toBe('http://127.0.0.2:9000');
    expect(a.requests[0]!.headers.authorization).toBe('Bearer env-token');
    const b = await meshctl(
      ['--server', 'http://127.0.0.3:9001', 'verify', '--token', 'flag-token'],
      ok,
      env,
    );
    expect(b.requests[0]!.url.origin).toBe('http://127.0.0.3:9001');
    expect(b.requests[0]!.headers.authorization).toBe('Bearer flag-token');
  });

  test('a 401 prints the message, the detail path and a hint; exit 1', async () => {
    const r = await meshctl(['get'], () =>
      apiError(401, 'UNAUTHENTICATED', 'missing bearer token', [
        { path: 'headers.authorization', message: 'send Authorization: Bearer <token>' },
      ]),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error: missing bearer token [401 UNAUTHENTICATED]');
    expect(r.stderr).toContain('  headers.authorization: send Authorization');
    expect(r.stderr).toContain('MESH_TOKEN');
  });
});

describe('apply', () => {
  test('every document of the input goes in one change set, with reason and idempotency key', async () => {
    const expected = parseManifests(require('node:fs').readFileSync(BOOKINFO, 'utf8'), 'b').map(
      (d) => d.value,
    );
    const r = await meshctl(
      ['apply', '-f', BOOKINFO],
      (req) => ({
        status: 201,
        body: {
          revision: 1,
          changeId: 'cid',
          hash: 'h',
          events: (req.body as { apply: { kind: string; name: string }[] }).apply.map((d, seq) => ({
            ...d,
            namespace: 'default',
            op: 'put',
            prevVersion: null,
            revision: 1,
            seq,
          })),
        },
      }),
      { MESH_REASON: 'bookinfo demo' },
    );
    expect(r.code).toBe(0);
    expect(r.requests).toHaveLength(1);
    const [req] = r.requests;
    expect(req!.method).toBe('POST');
    expect(req!.url.pathname).toBe('/v1/changes');
    expect(req!.body).toEqual({ reason: 'bookinfo demo', apply: expected });
    expect(req!.headers['idempotency-key']).toMatch(/^meshctl-[0-9a-f-]{36}$/);
    expect(r.stdout).toContain('Service default/productpage created\n');
    expect(r.stdout).toContain('applied as revision 1 (12 events, change cid)');
  });

  test('stdin, --expected-revision, --idempotency-key; unchanged and configured resources are reported', async () => {
    const stdin = `kind: Service\nname: a\nspec: {}\n---\nkind: Service\nname: b\nspec: {}\n`;
    const r = await meshctl(
      ['apply', '-f', '-', '--reason', 'r', '--expected-revision', '4', '--idempotency-key', 'k1'],
      () => ({
        status: 201,
        body: {
          revision: 5,
          changeId: 'c',
          hash: 'h',
          events: [
            {
              kind: 'Service',
              namespace: 'default',
              name: 'b',
              op: 'put',
              prevVersion: 2,
              revision: 5,
              seq: 0,
            },
          ],
        },
      }),
      {},
      stdin,
    );
    expect(r.code).toBe(0);
    expect(r.requests[0]!.body).toMatchObject({ expectedRevision: 4, reason: 'r' });
    expect(r.requests[0]!.headers['idempotency-key']).toBe('k1');
    expect(r.stdout).toBe(
      'Service default/a unchanged\nService default/b configured\napplied as revision 5 (1 event, change c)\n',
    );
  });

  test('an unchanged apply says nothing was written', async () => {
    const r = await meshctl(
      ['apply', '-f', '-', '--reason', 'r'],
      () => ({ status: 200, body: { revision: 9, unchanged: true } }),
      {},
      'kind: Service\nname: a\nspec: {}\n',
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('no changes: all 1 resources match revision 9; nothing written');
  });

  test('a refused apply prints each detail path with the file and line it came from; exit 1', async () => {
    const stdin = `kind: Service\nname: ok\nspec: {}\n---\nkind: Service\nname: bad\nspec: {vip: 300.1.1.1}\n`;
    const r = await meshctl(
      ['apply', '-f', '-', '--reason', 'r'],
      () =>
        apiError(400, 'INVALID', 'invalid change request: apply[1].spec.vip must be an IPv4 address', [
          { path: 'apply[1].spec.vip', message: 'must be an IPv4 address' },
        ]),
      {},
      stdin,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'error: invalid change request: apply[1].spec.vip must be an IPv4 address [400 INVALID]',
    );
    expect(r.stderr).toContain(
      '  apply[1].spec.vip (<stdin>:5, Service default/bad): must be an IPv4 address',
    );
  });

  test('a kind spelled as a command-line alias gets a hint', async () => {
    const r = await meshctl(
      ['apply', '-f', '-', '--reason', 'r'],
      () =>
        apiError(400, 'INVALID', 'invalid change request', [
          { path: 'apply[0].kind', message: 'unknown kind "svc"' },
          { path: 'apply[0].spec', message: 'is required' },
        ]),
      {},
      'kind: svc\nname: a\n',
    );
    expect(r.stderr).toContain(
      '  apply[0].kind (<stdin>:1, svc default/a; write kind: Service): unknown kind "svc"',
    );
    expect(r.stderr).toContain('  apply[0].spec (<stdin>:1, svc default/a): is required');
  });

  test('a conflict names the current head', async () => {
    const r = await meshctl(['apply', '-f', BOOKINFO, '--reason', 'r', '--expected-revision', '1'], () => ({
      status: 409,
      body: {
        error: { code: 'CONFLICT', message: 'expected revision 1, head is 3', details: [], headRevision: 3 },
      },
    }));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('the head is now revision 3');
  });

  test('a YAML error names file, line and column; nothing is sent', async () => {
    const r = await meshctl(
      ['apply', '-f', '-', '--reason', 'r'],
      undefined,
      {},
      'kind: Service\nname: [oops\n',
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: <stdin>:\d+:\d+: /);
    expect(r.requests).toHaveLength(0);
  });

  test('an empty input is an error', async () => {
    const r = await meshctl(['apply', '-f', '-', '--reason', 'r'], undefined, {}, '# nothing\n');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no resources found');
  });

  describe('--dry-run', () => {
    const current: Handler = (req) =>
      req.method === 'GET' && req.url.pathname === '/v1/resources'
        ? {
            status: 200,
            body: { revision: 7, items: [svc('productpage', '127.100.0.1'), svc('details', '127.100.0.9')] },
          }
        : { status: 500, body: {} };

    test('compares with the current state and writes nothing; needs no reason', async () => {
      const r = await meshctl(['apply', '-f', BOOKINFO, '--dry-run'], current);
      expect(r.code).toBe(0);
      expect(r.requests.map((q) => `${q.method} ${q.url.pathname}`)).toEqual(['GET /v1/resources']);
      expect(r.stdout).toContain('Service default/productpage unchanged (dry run)');
      expect(r.stdout).toContain('Service default/details configured (dry run)');
      expect(r.stdout).toContain('Service default/ratings created (dry run)');
      expect(r.stdout).toContain('-   vip: 127.100.0.9\n+   vip: 127.100.0.2\n');
      expect(r.stdout).toContain(
        'dry run against revision 7: 10 to create, 1 to configure, 1 unchanged; nothing written',
      );
    });

    test('validates locally with the API rules, with paths and sources', async () => {
      const stdin = `kind: Route\nname: r\nspec:\n  service: missing\n  backends: [{selector: {v: "1"}, weight: 1}]\n---\nkind: Service\nname: dup\nspec: {vip: 127.100.0.1, ports: [{port: 9080, protocol: TCP}], selector: {app: x}}\n`;
      const r = await meshctl(['apply', '-f', '-', '--dry-run'], current, {}, stdin);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        'apply[0].spec.service (<stdin>:1, Route default/r): Service default/missing does not exist',
      );
      expect(r.stderr).toContain(
        'apply[1].spec.ports[0] (<stdin>:7, Service default/dup): Service default/dup and Service default/productpage both use 127.100.0.1:9080/TCP',
      );
    });

    test('schema errors are found locally too', async () => {
      const r = await meshctl(
        ['apply', '-f', '-', '--dry-run'],
        current,
        {},
        'kind: Service\nname: x\nspec: {vip: 1.2.3, ports: [], selector: {}, extra: 1}\n',
      );
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('apply[0].spec.vip (<stdin>:1, Service default/x): must be an IPv4 address');
      expect(r.stderr).toContain('apply[0].spec.extra (<stdin>:1, Service default/x): unknown field');
    });

    test('--expected-revision that is not the head is a conflict', async () => {
      const r = await meshctl(['apply', '-f', BOOKINFO, '--dry-run', '--expected-revision', '6'], current);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('head is revision 7');
    });
  });
});

describe('delete', () => {
  const deleted: Handler = (req) => {
    const refs = (req.body as { delete: { kind: string; namespace: string; name: string }[] }).delete;
    const events = refs
      .filter((r) => r.name !== 'ghost')
      .map((r, seq) => ({ ...r, op: 'delete', prevVersion: 1, revision: 4, seq }));
    return events.length
      ? { status: 201, body: { revision: 4, changeId: 'c', hash: 'h', events } }
      : { status: 200, body: { revision: 3, unchanged: true } };
  };

  test('resolves the kind alias and the namespace', async () => {
    const r = await meshctl(['delete', 'authz', 'p1', 'p2', '-n', 'prod', '--reason', 'cleanup'], deleted);
    expect(r.code).toBe(0);
    expect(r.requests[0]!.body).toEqual({
      reason: 'cleanup',
      apply: [],
      delete: [
        { kind: 'AuthorizationPolicy', namespace: 'prod', name: 'p1' },
        { kind: 'AuthorizationPolicy', namespace: 'prod', name: 'p2' },
      ],
    });
    expect(r.stdout).toContain(
      'AuthorizationPolicy prod/p1 deleted\nAuthorizationPolicy prod/p2 deleted\ndeleted as revision 4\n',
    );
  });

  test('a missing resource fails unless --ignore-not-found', async () => {
    const r = await meshctl(['delete', 'svc', 'ghost', '--reason', 'r'], deleted);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Service default/ghost not found at revision 3');
    const ok = await meshctl(['delete', 'svc', 'ghost', '--reason', 'r', '--ignore-not-found'], deleted);
    expect(ok.code).toBe(0);
  });

  test('a refused delete names the resource behind the path', async () => {
    const r = await meshctl(['delete', 'svc', 'reviews', '--reason', 'r'], () =>
      apiError(400, 'INVALID', 'invalid change set', [
        {
          path: 'delete[0]',
          message: 'Service default/reviews is still referenced by Route default/reviews',
        },
      ]),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      '  delete[0] (Service default/reviews): Service default/reviews is still referenced by Route default/reviews',
    );
  });
});

describe('get', () => {
  const items = [svc('productpage', '127.100.0.1', 2), svc('details', '127.100.0.2', 5)];
  const list: Handler = (req) =>
    req.url.pathname === '/v1/resources'
      ? { status: 200, body: { revision: 5, items } }
      : { status: 200, body: { revision: 5, resource: items[0] } };

  test('a table by default; kind, namespace and revision go to the server', async () => {
    const r = await meshctl(['get', 'SVC', '-n', 'default', '--revision', '5'], list);
    expect(r.code).toBe(0);
    expect(r.requests[0]!.url.search).toBe('?kind=Service&namespace=default&revision=5');
    expect(r.stdout.split('\n')[0]).toMatch(/^NAMESPACE\s+NAME\s+VIP\s+PORTS\s+SELECTOR\s+VERSION$/);
    expect(r.stdout).toContain('productpage  127.100.0.1  9080/TCP  app=productpage  2');
  });

  test('-o yaml prints manifests, Services first, that read back as the same resources', async () => {
    const r = await meshctl(['get', '-o', 'yaml'], list);
    expect(r.stdout.indexOf('name: details')).toBeLessThan(r.stdout.indexOf('name: productpage'));
    expect(r.stdout.startsWith('# revision 5\n')).toBe(true);
    expect(parseManifests(r.stdout, 'out').map((d) => d.value)).toEqual(
      [items[1]!, items[0]!].map(({ version: _v, ...m }) => m),
    );
  });

  test('-o json prints an array of manifests; one resource prints one object', async () => {
    const r = await meshctl(['get', 'svc', '-o', 'json'], list);
    expect(JSON.parse(r.stdout)).toHaveLength(2);
    const one = await meshctl(['get', 'service', 'productpage', '-o', 'json'], list);
    expect(one.requests[0]!.url.pathname).toBe('/v1/resources/Service/default/productpage');
    expect(JSON.parse(one.stdout)).toEqual({
      kind: 'Service',
      namespace: 'default',
      name: 'productpage',
      spec: items[0]!.spec,
    });
  });

  test('nothing found goes to stderr', async () => {
    const r = await meshctl(['get', 'route'], () => ({ status: 200, body: { revision: 5, items: [] } }));
    expect([r.code, r.stdout, r.stderr]).toEqual([0, '', 'No Route resources found at revision 5.\n']);
  });

  test('a missing resource: the server message, exit 1', async () => {
    const r = await meshctl(['get', 'svc', 'nope'], () =>
      apiError(404, 'NOT_FOUND', 'Service default/nope does not exist at revision 5'),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('error: Service default/nope does not exist at revision 5 [404 NOT_FOUND]\n');
  });
});

describe('diff exit codes (as kubectl diff)', () => {
  const diff =
    (changed: boolean): Handler =>
    () => ({
      status: 200,
      body: {
        from: 1,
        to: 2,
        added: changed
          ? [{ kind: 'Service', namespace: 'default', name: 'a', spec: { vip: '127.100.0.1' } }]
          : [],
        removed: [],
        changed: [],
      },
    });

  test('0 without differences, 1 with', async () => {
    const same = await meshctl(['diff', '1', '2'], diff(false));
    expect([same.code, same.stdout]).toEqual([0, 'diff of revision 1 -> 2\nno differences\n']);
    expect(same.requests[0]!.url.search).toBe('?from=1&to=2');
    const differs = await meshctl(['diff', '1', '2'], diff(true));
    expect(differs.code).toBe(1);
    expect(differs.stdout).toContain('+ Service default/a (added)');
    const json = await meshctl(['diff', '1', '2', '-o', 'json'], diff(true));
    expect([json.code, JSON.parse(json.stdout).added]).toEqual([1, [expect.objectContaining({ name: 'a' })]]);
  });

  test('TO defaults to the head', async () => {
    const r = await meshctl(['diff', '1'], (req) =>
      req.url.pathname === '/v1/revisions'
        ? { status: 200, body: { headRevision: 9, items: [], next: null } }
        : diff(false)(req),
    );
    expect(r.requests.map((q) => q.url.search)).toEqual(['?limit=1', '?from=1&to=9']);
  });

  test('errors exit 2: server errors, unreachable server, bad arguments', async () => {
    expect(
      (await meshctl(['diff', '1', '99'], () => apiError(404, 'NOT_FOUND', 'revision 99 does not exist')))
        .code,
    ).toBe(2);
    expect((await meshctl(['diff', 'one', '2'])).code).toBe(2);
    const down = await meshctl(['diff', '1', '2'], () => {
      throw Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    });
    expect(down.code).toBe(2);
    expect(down.stderr).toContain('cannot reach the API');
  });
});

describe('rollback', () => {
  test('--dry-run sends dryRun and shows the diff; needs no reason', async () => {
    const r = await meshctl(['rollback', '--to', '2', '--dry-run'], () => ({
      status: 200,
      body: {
        dryRun: true,
        fromRevision: 5,
        toRevision: 2,
        unchanged: false,
        diff: {
          added: [],
          removed: [{ kind: 'Route', namespace: 'default', name: 'reviews', spec: {} }],
          changed: [],
        },
      },
    }));
    expect(r.code).toBe(0);
    expect(r.requests[0]!.body).toEqual({
      toRevision: 2,
      reason: 'meshctl rollback --dry-run',
      dryRun: true,
    });
    expect(r.stdout).toContain('- Route default/reviews (removed)');
    expect(r.stdout).toContain('nothing written');
  });

  test('writes a new revision', async () => {
    const r = await meshctl(['rollback', '--to', '2', '--reason', 'bad canary'], () => ({
      status: 201,
      body: {
        revision: 6,
        changeId: 'c',
        hash: 'h',
        restoredFromRevision: 2,
        events: [
          {
            kind: 'Route',
            namespace: 'default',
            name: 'reviews',
            op: 'delete',
            prevVersion: 3,
            revision: 6,
            seq: 0,
          },
        ],
      },
    }));
    expect(r.code).toBe(0);
    expect(r.requests[0]!.body).toEqual({ toRevision: 2, reason: 'bad canary' });
    expect(r.requests[0]!.headers['idempotency-key']).toBeDefined();
    expect(r.stdout).toBe(
      'Route default/reviews deleted\nrolled back to the state of revision 2 as new revision 6 (1 event)\n',
    );
  });
});

describe('history, show, audit, verify', () => {
  test('history lists the latest revisions by default', async () => {
    const r = await meshctl(['history', '--limit', '10'], (req) => ({
      status: 200,
      body: { headRevision: 25, items: req.url.searchParams.get('limit') === '1' ? [] : [], next: null },
    }));
    expect(r.requests.map((q) => q.url.search)).toEqual(['?limit=1', '?from=16&limit=10']);
  });

  test('history of one resource', async () => {
    const r = await meshctl(['history', 'wl', 'reviews-v1', '-o', 'json'], () => ({
      status: 200,
      body: { items: [] },
    }));
    expect(r.requests[0]!.url.pathname).toBe('/v1/resources/Workload/default/reviews-v1/history');
    expect(JSON.parse(r.stdout)).toEqual([]);
  });

  test('audit filters: kind alias, durations become times', async () => {
    const before = Date.now();
    const r = await meshctl(
      ['audit', '--kind', 'svc', '--actor', 'alice', '--since', '2h', '--until', '2030-01-01'],
      () => ({ status: 200, body: { items: [] } }),
    );
    const q = r.requests[0]!.url.searchParams;
    expect(q.get('kind')).toBe('Service');
    expect(q.get('actor')).toBe('alice');
    expect(q.get('until')).toBe('2030-01-01');
    const since = Date.parse(q.get('since')!);
    expect(Math.abs(before - 2 * 3_600_000 - since)).toBeLessThan(5_000);
    expect(r.stderr).toBe('No audit entries match.\n');
  });

  test('verify: exit 1 when the chain is broken', async () => {
    const r = await meshctl(['verify'], () => ({
      status: 200,
      body: {
        ok: false,
        from: 1,
        to: 4,
        firstBadRevision: 3,
        reason: 'hash mismatch',
        expected: 'a',
        actual: 'b',
      },
    }));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('BROKEN at revision 3');
  });

  test('show', async () => {
    const r = await meshctl(['show', '3', '-o', 'yaml'], () => ({
      status: 200,
      body: { revision: 3, events: [] },
    }));
    expect(r.requests[0]!.url.pathname).toBe('/v1/revisions/3');
    expect(r.stdout).toBe('revision: 3\nevents: []\n');
  });
});
