import type { ChangeSet, StoredResource } from './api-types';
import {
  auditTable,
  backends,
  changeSetText,
  clean,
  detailLines,
  diffText,
  formatTime,
  lineDiff,
  manifestOf,
  resourcesTable,
  revisionsTable,
  table,
  toYamlStream,
  truncate,
  verifyText,
} from './format';
import { parseManifests } from './manifests';

const service: StoredResource = {
  kind: 'Service',
  namespace: 'default',
  name: 'reviews',
  version: 3,
  spec: { vip: '127.100.0.4', ports: [{ port: 9080, protocol: 'TCP' }], selector: { app: 'reviews' } },
};
const workload: StoredResource = {
  kind: 'Workload',
  namespace: 'default',
  name: 'reviews-v1',
  version: 1,
  spec: {
    address: '127.0.1.4',
    node: 'node-1',
    labels: { app: 'reviews', version: 'v1' },
    identity: 'bookinfo-reviews',
  },
};
const route: StoredResource = {
  kind: 'Route',
  namespace: 'default',
  name: 'reviews',
  version: 2,
  spec: {
    service: 'reviews',
    backends: [
      { selector: { version: 'v1' }, weight: 8 },
      { selector: { version: 'v2' }, weight: 1 },
      { selector: { version: 'v3' }, weight: 1 },
    ],
  },
};

describe('table', () => {
  test('aligns columns two spaces apart, without trailing spaces', () => {
    expect(
      table(
        ['NAME', 'VIP'],
        [
          ['a', '127.100.0.1'],
          ['longer-name', ''],
        ],
      ),
    ).toBe('NAME         VIP\na            127.100.0.1\nlonger-name\n');
  });

  test('control characters from the server cannot drive the terminal', () => {
    expect(clean('ok\u001b[31mred\nline\u0007')).toBe('ok\\x1b[31mred\\nline\\x07');
    expect(table(['A'], [['\u001b]0;title\u0007']])).not.toContain('\u001b');
  });

  test('truncate and time', () => {
    expect(truncate('abcdef', 4)).toBe('abc…');
    expect(truncate('abc', 4)).toBe('abc');
    expect(formatTime('2024-05-01T12:00:00.123Z')).toBe('2024-05-01T12:00:00Z');
  });
});

describe('resources', () => {
  test('a kind table has kind-specific columns', () => {
    const out = resourcesTable([workload], false);
    expect(out.split('\n')[0]).toBe(
      'NAMESPACE  NAME        ADDRESS    NODE    IDENTITY          WEIGHT  LABELS                  VERSION',
    );
    expect(out).toContain(
      'reviews-v1  127.0.1.4  node-1  bookinfo-reviews  1       app=reviews,version=v1  1',
    );
  });

  test('listing every kind: one table per kind, in kind order, names prefixed with the kind', () => {
    const out = resourcesTable([route, workload, service], true);
    const tables = out.split('\n\n');
    expect(tables).toHaveLength(3);
    expect(tables[0]).toContain('service/reviews');
    expect(tables[0]).toContain('9080/TCP');
    expect(tables[1]).toContain('workload/reviews-v1');
    expect(tables[2]).toContain('route/reviews');
  });

  test('route backends as percentages of the total weight', () => {
    expect(backends(route.spec)).toBe('80% version=v1; 10% version=v2; 10% version=v3');
    expect(
      backends({
        backends: [
          { selector: { v: '1' }, weight: 1 },
          { selector: { v: '2' }, weight: 2 },
        ],
      }),
    ).toBe('33.3% v=1; 66.7% v=2');
  });

  test('manifests drop version and origin, and a YAML stream of them reads back unchanged', () => {
    const items = [
      service,
      workload,
      route,
      {
        ...service,
        name: 'tricky',
        origin: 'east',
        spec: { note: '0123', yes: 'no', long: 'x'.repeat(300) },
      },
    ];
    const yaml = toYamlStream(items.map(manifestOf), 'revision 7');
    expect(yaml.startsWith('# revision 7\n')).toBe(true);
    expect(yaml).not.toContain('version: 3');
    const back = parseManifests(yaml, 'out.yaml').map((d) => d.value);
    expect(back).toEqual(items.map(manifestOf));
  });

  test('an empty stream is only the comment', () => {
    expect(toYamlStream([], 'revision 0')).toBe('# revision 0\n');
  });
});

describe('diffs', () => {
  test('lineDiff keeps common lines and marks the rest', () => {
    expect(lineDiff(['a', 'b', 'c'], ['a', 'x', 'c', 'd'])).toEqual([
      { op: ' ', line: 'a' },
      { op: '-', line: 'b' },
      { op: '+', line: 'x' },
      { op: ' ', line: 'c' },
      { op: '+', line: 'd' },
    ]);
  });

  test('diffText shows added, changed (as a spec line diff) and removed resources, then a summary', () => {
    const after = { ...route.spec, backends: [{ selector: { version: 'v1' }, weight: 5 }] };
    const out = diffText({
      added: [manifestOf(service)],
      changed: [{ kind: 'Route', namespace: 'default', name: 'reviews', before: route.spec, after }],
      removed: [manifestOf(workload)],
    });
    expect(out).toContain('+ Service default/reviews (added)\n+   vip: 127.100.0.4\n');
    expect(out).toContain('~ Route default/reviews (changed)\n    service: reviews\n    backends:\n');
    expect(out).toContain('-       weight: 8\n');
    expect(out).toContain('+       weight: 5\n');
    expect(out).toContain('- Workload default/reviews-v1 (removed)\n');
    expect(out.endsWith('1 added, 1 changed, 1 removed\n')).toBe(true);
    expect(diffText({ added: [], changed: [], removed: [] })).toBe('no differences\n');
  });
});

describe('history, show, audit, verify', () => {
  const header = {
    revision: 4,
    changeId: 'c-4',
    cluster: 'local',
    actor: 'alice',
    reason: 'canary\nreviews v2',
    requestId: 'r-1',
    idempotencyKey: null,
    traceContext: null,
    restoredFromRevision: 2,
    metadata: {},
    createdAt: '2024-05-01T12:00:00.123Z',
    eventCount: 1,
    prevHash: 'a'.repeat(64),
    hash: 'b'.repeat(64),
  };

  test('revisions table', () => {
    const out = revisionsTable([header]);
    expect(out.split('\n')[0]).toMatch(/^REVISION\s+TIME\s+ACTOR\s+EVENTS\s+RESTORED-FROM\s+HASH\s+REASON$/);
    expect(out).toContain(
      '4         2024-05-01T12:00:00Z  alice  1       2              bbbbbbbbbbbb  canary\\nreviews v2',
    );
  });

  test('one change set with its events', () => {
    const cs: ChangeSet = {
      ...header,
      events: [
        {
          kind: 'Route',
          namespace: 'default',
          name: 'reviews',
          op: 'put',
          spec: {},
          prevVersion: 2,
          revision: 4,
          seq: 0,
        },
      ],
    };
    const out = changeSetText(cs);
    expect(out).toContain('Restored from: revision 2');
    expect(out).toContain('Reason:        canary\\nreviews v2');
    expect(out).toMatch(/0\s+configured\s+Route\s+default\s+reviews\s+2/);
  });

  test('audit table names rollbacks and token changes', () => {
    const out = auditTable([
      {
        type: 'change',
        time: header.createdAt,
        actor: 'alice',
        revision: 4,
        changeId: 'c',
        reason: 'oops',
        requestId: null,
        idempotencyKey: null,
        traceContext: null,
        restoredFromRevision: 2,
        eventCount: 1,
        cluster: 'local',
        hash: 'h',
      },
      {
        type: 'token',
        time: header.createdAt,
        actor: 'admin',
        action: 'create',
        tokenId: 't1',
        tokenName: 'ci',
        role: 'operator',
        requestId: null,
      },
    ]);
    expect(out).toMatch(/rollback\s+alice\s+4\s+1\s+to revision 2: oops/);
    expect(out).toContain('create token ci (operator, id t1)');
  });

  test('verify', () => {
    expect(verifyText({ ok: true, from: 1, to: 9, headRevision: 9, headHash: 'ff' })).toBe(
      'hash chain OK: revisions 1..9 verified; head revision 9, hash ff\n',
    );
    expect(verifyText({ ok: true, from: 1, to: 0, headRevision: 0, headHash: '0' })).toContain('empty');
    expect(
      verifyText({
        ok: false,
        from: 1,
        to: 9,
        firstBadRevision: 5,
        reason: 'hash mismatch',
        expected: 'aa',
        actual: 'bb',
      }),
    ).toContain('BROKEN at revision 5: hash mismatch');
  });

  test('error details carry their path and, when known, where the input came from', () => {
    expect(
      detailLines(
        [
          { path: 'apply[1].spec.vip', message: 'must be an IPv4 address' },
          { path: '', message: 'too big' },
        ],
        (p) => (p.startsWith('apply[1]') ? 'mesh.yaml:12, Service default/x' : undefined),
      ),
    ).toEqual([
      '  apply[1].spec.vip (mesh.yaml:12, Service default/x): must be an IPv4 address',
      '  (request): too big',
    ]);
  });
});
