import { withClient } from '../harness/db';
import { type ApiHarness, change, service, startApi } from './api-harness';

/* Probes, metrics, the OpenAPI document and request logging. */

let api: ApiHarness;

beforeAll(async () => {
  api = await startApi('api_ops');
});

afterAll(async () => {
  await api?.close();
});

test('healthz and readyz need no token', async () => {
  const h = await api.call('GET', '/healthz', { token: null });
  expect(h.status).toBe(200);
  expect(h.body).toEqual({ status: 'ok' });
  const r = await api.call('GET', '/readyz', { token: null });
  expect(r.status).toBe(200);
  expect(r.body).toEqual({ status: 'ready', headRevision: 0 });
});

test('metrics: request counts by route and status, a latency histogram and the head revision', async () => {
  await api.call('POST', '/v1/changes', { body: change([service('m', '127.100.6.1')], [], 'metrics') });
  await api.call('GET', '/v1/resources/Service/default/m');
  await api.call('GET', '/v1/resources/Service/default/missing');
  const m = await api.call('GET', '/metrics', { token: null });
  expect(m.status).toBe(200);
  expect(m.headers.get('content-type')).toMatch(/^text\/plain;.*version=0\.0\.4/);
  expect(m.text).toContain('meshplane_api_requests_total{method="POST",route="/v1/changes",status="201"} 1');
  expect(m.text).toContain(
    'meshplane_api_requests_total{method="GET",route="/v1/resources/:kind/:namespace/:name",status="404"} 1',
  );
  expect(m.text).toMatch(
    /meshplane_api_request_duration_seconds_bucket\{method="GET",route="\/v1\/resources\/:kind\/:namespace\/:name",le="\+Inf"\} 2/,
  );
  expect(m.text).toContain('# TYPE meshplane_api_request_duration_seconds histogram');
  expect(m.text).toContain('meshplane_api_appends_total{result="appended"} 1');
  expect(m.text).toMatch(/\nmeshplane_head_revision 1\n/);
});

test('the OpenAPI document describes every route', async () => {
  const r = await api.call('GET', '/v1/openapi.json', { token: null });
  expect(r.status).toBe(200);
  expect(r.body.openapi).toBe('3.1.0');
  expect(Object.keys(r.body.paths).sort()).toEqual(
    [
      '/healthz',
      '/metrics',
      '/readyz',
      '/v1/audit',
      '/v1/audit/verify',
      '/v1/changes',
      '/v1/diff',
      '/v1/nodes',
      '/v1/openapi.json',
      '/v1/resources',
      '/v1/resources/{kind}/{namespace}/{name}',
      '/v1/resources/{kind}/{namespace}/{name}/history',
      '/v1/revisions',
      '/v1/revisions/{rev}',
      '/v1/revisions/{rev}/propagation',
      '/v1/rollback',
      '/v1/snapshot',
      '/v1/tokens',
      '/v1/tokens/{id}',
    ].sort(),
  );
  const svc = r.body.components.schemas.Service;
  expect(svc.additionalProperties).toBe(false);
  expect(Object.keys(svc.properties)).toEqual(expect.arrayContaining(['kind', 'namespace', 'name', 'spec']));
  expect(r.body.components.schemas.ChangeRequest.required).toContain('reason');
});

test('X-Request-Id is honored and echoed; otherwise one is generated; one log line per request', async () => {
  const given = await api.call('GET', '/v1/resources', { headers: { 'x-request-id': 'ops-req-1' } });
  expect(given.headers.get('x-request-id')).toBe('ops-req-1');
  const generated = await api.call('GET', '/v1/resources');
  const id = generated.headers.get('x-request-id');
  expect(id).toMatch(/^[0-9a-f-]{36}$/);
  const bad = await api.call('GET', '/v1/resources', {
    headers: { 'x-request-id': 'has spaces and "quotes"' },
  });
  expect(bad.headers.get('x-request-id')).not.toContain(' ');
  for (const rid of ['ops-req-1', id]) {
    const lines = api.logs.filter((l) => l.requestId === rid);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ msg: 'request', actor: 'bootstrap', method: 'GET', status: 200 });
  }
  // Rejected before routing (bad JSON) still gets exactly one line.
  await api.call('POST', '/v1/changes', {
    raw: '{',
    headers: { 'content-type': 'application/json', 'x-request-id': 'ops-bad' },
  });
  const badLines = api.logs.filter((l) => l.requestId === 'ops-bad');
  expect(badLines).toHaveLength(1);
  expect(badLines[0]).toMatchObject({ status: 400, errorCode: 'MALFORMED_JSON' });
});

test('readyz is 503 when Postgres is unreachable; healthz stays 200', async () => {
  // Take the database away under the running API: terminate its sessions and drop it.
  await withClient(api.db.url.replace(/\/[^/]+$/, '/postgres'), async (c) => {
    await c.query(`DROP DATABASE "${api.db.name}" WITH (FORCE)`);
  });
  const r = await api.call('GET', '/readyz', { token: null });
  expect(r.status).toBe(503);
  expect(r.body.error.code).toBe('UNAVAILABLE');
  expect((await api.call('GET', '/healthz', { token: null })).status).toBe(200);
});
