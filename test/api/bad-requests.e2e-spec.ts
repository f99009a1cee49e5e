import { type ApiHarness, change, policy, route, service, startApi, workload } from './api-harness';

/*
 * Every bad request gets a precise error and writes nothing: each row asserts
 * the status, the error code, one detail path, and that the head did not move.
 */

let api: ApiHarness;
let viewerToken: string;
let operatorToken: string;
let revokedToken: string;
let head: number;

beforeAll(async () => {
  api = await startApi('api_bad');
  const mk = async (name: string, role: string) => {
    const r = await api.call('POST', '/v1/tokens', { body: { name, role } });
    expect(r.status).toBe(201);
    return r.body as { id: string; token: string };
  };
  viewerToken = (await mk('viewer-1', 'viewer')).token;
  operatorToken = (await mk('operator-1', 'operator')).token;
  const revoked = await mk('revoked-1', 'operator');
  revokedToken = revoked.token;
  expect((await api.call('DELETE', `/v1/tokens/${revoked.id}`)).status).toBe(200);

  const base = change(
    [
      service('reviews', '127.100.0.3'),
      service('ratings', '127.100.0.4'),
      workload('reviews-v1', '127.0.1.3', 'reviews'),
      route('reviews', 'reviews', { v1: 100 }),
    ],
    [],
    'base state',
  );
  expect((await api.call('POST', '/v1/changes', { body: base })).status).toBe(201);
  head = await api.head();
  expect(head).toBe(1);
});

afterAll(async () => {
  await api?.close();
});

interface Case {
  name: string;
  method?: string;
  url?: string;
  body?: unknown;
  raw?: string;
  headers?: Record<string, string>;
  /** 'viewer' | 'operator' | 'revoked' | a literal token | null (none); default admin. */
  as?: string | null;
  status: number;
  code: string;
  path: string;
}

const svc = (spec: Record<string, unknown>) => ({ kind: 'Service', name: 'bad', spec });
const goodSvcSpec = { vip: '127.100.0.50', ports: [{ port: 80, protocol: 'TCP' }], selector: { app: 'bad' } };
const withPort = (port: unknown, extra: Record<string, unknown> = {}) =>
  change([svc({ ...goodSvcSpec, ports: [{ port, protocol: 'TCP', ...extra }] })]);

const cases: Case[] = [
  // --- addresses and ports
  {
    name: 'VIP octet > 255',
    body: change([service('bad', '127.100.0.300')]),
    status: 400,
    code: 'INVALID',
    path: 'apply[0].spec.vip',
  },
  {
    name: 'VIP not an IP',
    body: change([service('bad', 'reviews.local')]),
    status: 400,
    code: 'INVALID',
    path: 'apply[0].spec.vip',
  },
  {
    name: 'VIP with leading zero',
    body: change([service('bad', '127.100.0.01')]),
    status: 400,
    code: 'INVALID',
    path: 'apply[0].spec.vip',
  },
  {
    name: 'workload address has 3 octets',
    body: change([workload('w', '127.0.1', 'bad')]),
    status: 400,
    code: 'INVALID',
    path: 'apply[0].spec.address',
  },
  { name: 'port 0', body: withPort(0), status: 400, code: 'INVALID', path: 'apply[0].spec.ports[0].port' },
  {
    name: 'port 65536',
    body: withPort(65536),
    status: 400,
    code: 'INVALID',
    path: 'apply[0].spec.ports[0].port',
  },
  {
    name: 'port as a string',
    body: withPort('80'),
    status: 400,
    code: 'INVALID',
    path: 'apply[0].spec.ports[0].port',
  },
  {
    name: 'port not an integer',
    body: withPort(80.5),
    status: 400,
    code: 'INVALID',
    path: 'apply[0].spec.ports[0].port',
  },
  {
    name: 'targetPort 65536',
    body: withPort(80, { targetPort: 65536 }),
    status: 400,
    code: 'INVALID',
    path: 'apply[0].spec.ports[0].targetPort',
  },
  {
    name: 'protocol SCTP',
    body: change([svc({ ...goodSvcSpec, ports: [{ port: 80, protocol: 'SCTP' }] })]),
    status: 400,
    code: 'INVALID',
    path: 'apply[0].spec.ports[0].protocol',
  },
  {
    name: 'no ports',
    body: change([svc({ ...goodSvcSpec, ports: [] })]),
    status: 400,
    code: 'INVALID',
    path: 'apply[0].spec.ports',
  },
  // --- cross-resource rules, checked against the state the change would produce
  {
    name: 'duplicate VIP with an existing Service',
    body: change([service('copy', '127.100.0.3')]),
    status: 400,
    code: 'INVALID',
    path: 'apply[0].spec.ports[0]',
  },
  {
    name: 'duplicate VIP inside one change',
    body: change([service('one', '127.100.0.60'), service('two', '127.100.0.60')]),
    status: 400,
    code: 'INVALID',
    path: 'apply[1].spec.ports[0]',
  },
  {
    name: 'Route to a missing Service',
    body: change([route('ghost', 'ghost', { v1: 1 })]),
    status: 400,
    code: 'INVALID',
    path: 'apply[0].spec.service',
  },
  {
    name: 'policy on a missing Service',
    body: change([policy('p', 'ghost', 'ALLOW', ['productpage'])]),
    status: 400,
    code: 'INVALID',
    path: 'apply[0].spec.service',
  },
  {
    name: 'deleting a Service a Route names',
    body: change([], [{ kind: 'Service', name: 'reviews' }]),
    status: 400,
    code: 'INVALID',
    path: 'delete[0]',
  },
  {
    name: 'same resource twice',
    body: change([service('x', '127.100.0.70'), service('x', '127.100.0.71')]),
    status: 400,
    code: 'INVALID',
    path: 'apply[1]',
  },
  // --- shapes, kinds, fields, types
  {
    name: 'unknown kind',
    body: change([{ kind: 'Gateway', name: 'g', spec: {} }]),
    status: 400,
    code: 'INVALID',
    path: 'apply[0].kind',
  },
  {
    name: 'missing kind',
    body: change([{ name: 'g', spec: goodSvcSpec }]),
    status: 400,
    code: 'INVALID',
    path: 'apply[0].kind',
  },
  {
    name: 'unknown spec field',
    body: change([svc({ ...goodSvcSpec, selecter: { app: 'x' } })]),
    status: 400,
    code: 'INVALID',
    path: 'apply[0].spec.selecter',
  },
  {
    name: 'unknown resource field',
    body: change([{ ...service('bad', '127.100.0.80'), metadata: {} }]),
    status: 400,
    code: 'INVALID',
    path: 'apply[0].metadata',
  },
  {
    name: 'unknown envelope field',
    body: { ...change([service('bad', '127.100.0.81')]), force: true },
    status: 400,
    code: 'INVALID',
    path: 'force',
  },
  {
    name: 'name not a DNS label',
    body: change([service('Reviews_V2', '127.100.0.82')]),
    status: 400,
    code: 'INVALID',
    path: 'apply[0].name',
  },
  {
    name: 'namespace not a DNS label',
    body: change([{ ...service('bad', '127.100.0.83'), namespace: 'Prod!' }]),
    status: 400,
    code: 'INVALID',
    path: 'apply[0].namespace',
  },
  {
    name: 'spec is a string',
    body: change([{ kind: 'Service', name: 'bad', spec: 'vip=127.100.0.84' }]),
    status: 400,
    code: 'INVALID',
    path: 'apply[0].spec',
  },
  {
    name: 'apply is an object',
    body: { reason: 'x', apply: { kind: 'Service' } },
    status: 400,
    code: 'INVALID',
    path: 'apply',
  },
  {
    name: 'route weight out of range',
    body: change([route('reviews', 'reviews', { v1: 10001 })]),
    status: 400,
    code: 'INVALID',
    path: 'apply[0].spec.backends[0].weight',
  },
  {
    name: 'delete of an unknown kind',
    body: change([], [{ kind: 'Gateway', name: 'g' }]),
    status: 400,
    code: 'INVALID',
    path: 'delete[0].kind',
  },
  { name: 'nothing to change', body: change([], []), status: 400, code: 'INVALID', path: 'apply' },
  {
    name: 'body is an array',
    raw: '[]',
    headers: { 'content-type': 'application/json' },
    status: 400,
    code: 'INVALID',
    path: '',
  },
  // --- reason and concurrency
  {
    name: 'empty reason',
    body: change([service('bad', '127.100.0.90')], [], ''),
    status: 400,
    code: 'INVALID',
    path: 'reason',
  },
  {
    name: 'blank reason',
    body: change([service('bad', '127.100.0.90')], [], '   '),
    status: 400,
    code: 'INVALID',
    path: 'reason',
  },
  {
    name: 'missing reason',
    body: { apply: [service('bad', '127.100.0.90')] },
    status: 400,
    code: 'INVALID',
    path: 'reason',
  },
  {
    name: 'expectedRevision negative',
    body: change([service('bad', '127.100.0.91')], [], 'r', { expectedRevision: -1 }),
    status: 400,
    code: 'INVALID',
    path: 'expectedRevision',
  },
  {
    name: 'expectedRevision a string',
    body: change([service('bad', '127.100.0.91')], [], 'r', { expectedRevision: '1' }),
    status: 400,
    code: 'INVALID',
    path: 'expectedRevision',
  },
  {
    name: 'stale expectedRevision',
    body: change([service('bad', '127.100.0.92')], [], 'r', { expectedRevision: 0 }),
    status: 409,
    code: 'CONFLICT',
    path: 'expectedRevision',
  },
  {
    name: 'malformed Idempotency-Key',
    body: change([service('bad', '127.100.0.93')]),
    headers: { 'idempotency-key': 'has space' },
    status: 400,
    code: 'INVALID',
    path: 'headers.idempotency-key',
  },
  // --- transport
  {
    name: 'body over 1 MiB',
    raw: JSON.stringify({ reason: 'x'.repeat(1024 * 1024 + 10), apply: [] }),
    headers: { 'content-type': 'application/json' },
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
    path: '',
  },
  {
    name: 'malformed JSON',
    raw: '{"reason": "x", "apply": [',
    headers: { 'content-type': 'application/json' },
    status: 400,
    code: 'MALFORMED_JSON',
    path: '',
  },
  {
    name: 'text/plain body',
    raw: 'reason: x',
    headers: { 'content-type': 'text/plain' },
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
    path: 'headers.content-type',
  },
  {
    name: 'YAML content type',
    raw: 'reason: x',
    headers: { 'content-type': 'application/yaml' },
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
    path: 'headers.content-type',
  },
  {
    name: 'no content type',
    raw: '{"reason":"x"}',
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
    path: 'headers.content-type',
  },
  // --- authentication and roles
  {
    name: 'missing token',
    as: null,
    body: change([service('bad', '127.100.0.94')]),
    status: 401,
    code: 'UNAUTHENTICATED',
    path: 'headers.authorization',
  },
  {
    name: 'wrong token',
    as: 'mpt_not-a-real-token',
    body: change([service('bad', '127.100.0.94')]),
    status: 401,
    code: 'UNAUTHENTICATED',
    path: 'headers.authorization',
  },
  {
    name: 'Basic instead of Bearer',
    as: null,
    headers: { authorization: 'Basic YWRtaW46YWRtaW4=' },
    body: change([service('bad', '127.100.0.94')]),
    status: 401,
    code: 'UNAUTHENTICATED',
    path: 'headers.authorization',
  },
  {
    name: 'revoked token',
    as: 'revoked',
    body: change([service('bad', '127.100.0.94')]),
    status: 401,
    code: 'UNAUTHENTICATED',
    path: 'headers.authorization',
  },
  {
    name: 'viewer writing',
    as: 'viewer',
    body: change([service('bad', '127.100.0.94')]),
    status: 403,
    code: 'FORBIDDEN',
    path: 'headers.authorization',
  },
  {
    name: 'viewer rolling back',
    as: 'viewer',
    url: '/v1/rollback',
    body: { toRevision: 1, reason: 'r' },
    status: 403,
    code: 'FORBIDDEN',
    path: 'headers.authorization',
  },
  {
    name: 'operator creating a token',
    as: 'operator',
    url: '/v1/tokens',
    body: { name: 'x', role: 'admin' },
    status: 403,
    code: 'FORBIDDEN',
    path: 'headers.authorization',
  },
  // --- other write routes
  {
    name: 'token with unknown role',
    url: '/v1/tokens',
    body: { name: 'x', role: 'root' },
    status: 400,
    code: 'INVALID',
    path: 'role',
  },
  {
    name: 'token name with a colon',
    url: '/v1/tokens',
    body: { name: 'system:x', role: 'viewer' },
    status: 400,
    code: 'INVALID',
    path: 'name',
  },
  {
    name: 'token name taken by a live token',
    url: '/v1/tokens',
    body: { name: 'viewer-1', role: 'viewer' },
    status: 409,
    code: 'CONFLICT',
    path: 'name',
  },
  {
    name: 'rollback to revision 0',
    url: '/v1/rollback',
    body: { toRevision: 0, reason: 'r' },
    status: 400,
    code: 'INVALID',
    path: 'toRevision',
  },
  {
    name: 'rollback without reason',
    url: '/v1/rollback',
    body: { toRevision: 1 },
    status: 400,
    code: 'INVALID',
    path: 'reason',
  },
  {
    name: 'rollback to a future revision',
    url: '/v1/rollback',
    body: { toRevision: 99, reason: 'r' },
    status: 404,
    code: 'NOT_FOUND',
    path: 'toRevision',
  },
  {
    name: 'revoke an unknown token',
    method: 'DELETE',
    url: '/v1/tokens/00000000-0000-4000-8000-000000000000',
    status: 404,
    code: 'NOT_FOUND',
    path: 'id',
  },
  // --- reads with bad parameters (nothing to write, but still precise)
  {
    name: 'revision not a number',
    method: 'GET',
    url: '/v1/resources?revision=abc',
    status: 400,
    code: 'INVALID',
    path: 'revision',
  },
  {
    name: 'future revision',
    method: 'GET',
    url: '/v1/resources?revision=99',
    status: 404,
    code: 'NOT_FOUND',
    path: 'revision',
  },
  {
    name: 'unknown kind filter',
    method: 'GET',
    url: '/v1/resources?kind=Gateway',
    status: 400,
    code: 'INVALID',
    path: 'kind',
  },
  {
    name: 'unknown query parameter',
    method: 'GET',
    url: '/v1/resources?knd=Service',
    status: 400,
    code: 'INVALID',
    path: 'knd',
  },
  {
    name: 'diff without to',
    method: 'GET',
    url: '/v1/diff?from=0',
    status: 400,
    code: 'INVALID',
    path: 'to',
  },
  {
    name: 'diff to the future',
    method: 'GET',
    url: '/v1/diff?from=0&to=99',
    status: 404,
    code: 'NOT_FOUND',
    path: 'to',
  },
  {
    name: 'revisions limit 0',
    method: 'GET',
    url: '/v1/revisions?limit=0',
    status: 400,
    code: 'INVALID',
    path: 'limit',
  },
  {
    name: 'audit since not a time',
    method: 'GET',
    url: '/v1/audit?since=yesterday',
    status: 400,
    code: 'INVALID',
    path: 'since',
  },
];

function tokenFor(as: string | null | undefined): string | null | undefined {
  if (as === 'viewer') return viewerToken;
  if (as === 'operator') return operatorToken;
  if (as === 'revoked') return revokedToken;
  return as;
}

test('the table has at least 30 bad writes', () => {
  expect(cases.filter((c) => (c.method ?? 'POST') !== 'GET').length).toBeGreaterThanOrEqual(30);
});

test.each(cases)('$name → $status at "$path"', async (c) => {
  const tokensBefore = (await api.call('GET', '/v1/tokens')).body.items.length;
  const r = await api.call(c.method ?? 'POST', c.url ?? '/v1/changes', {
    token: tokenFor(c.as),
    ...(c.body !== undefined ? { body: c.body } : {}),
    ...(c.raw !== undefined ? { raw: c.raw } : {}),
    ...(c.headers ? { headers: c.headers } : {}),
  });
  expect({ status: r.status, code: r.body?.error?.code }).toEqual({ status: c.status, code: c.code });
  expect(typeof r.body.error.message).toBe('string');
  expect(r.body.error.details.map((d: { path: string }) => d.path)).toContain(c.path);
  if (c.status === 409 && c.code === 'CONFLICT' && !c.url) expect(r.body.error.headRevision).toBe(head);
  // Nothing was written: no revision, no token.
  expect(await api.head()).toBe(head);
  expect((await api.call('GET', '/v1/tokens')).body.items.length).toBe(tokensBefore);
});

test('a failed request leaves no change set, event or token audit row behind', async () => {
  const audit = await api.call('GET', '/v1/audit?limit=1000');
  expect(audit.body.items.filter((e: { type: string }) => e.type === 'change')).toHaveLength(1);
  // The bootstrap token's creation, then 3 creates and 1 revoke in beforeAll.
  expect(audit.body.items.filter((e: { type: string }) => e.type === 'token').length).toBe(5);
  const verify = await api.call('GET', '/v1/audit/verify');
  expect(verify.body).toMatchObject({ ok: true, headRevision: head });
});

test('an unknown route is a 404 in the same error shape', async () => {
  const r = await api.call('GET', '/v1/nowhere');
  expect(r.status).toBe(404);
  expect(r.body).toEqual({
    error: { code: 'NOT_FOUND', message: 'no route for GET /v1/nowhere', details: [] },
  });
});
