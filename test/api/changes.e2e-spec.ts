import { type ApiHarness, change, policy, route, service, startApi, workload } from './api-harness';

/* Writes and reads over real HTTP: changes, resources at any revision, history, revisions, diff, snapshot. */

let api: ApiHarness;
let operator: string;

beforeAll(async () => {
  api = await startApi('api_changes');
  const r = await api.call('POST', '/v1/tokens', { body: { name: 'alice', role: 'operator' } });
  operator = r.body.token;
});

afterAll(async () => {
  await api?.close();
});

const post = (body: unknown, headers: Record<string, string> = {}, token?: string) =>
  api.call('POST', '/v1/changes', { body, headers, token: token ?? operator });

describe('POST /v1/changes', () => {
  test('a new change is 201 with revision, change id, hash and events', async () => {
    const r = await post(
      change(
        [
          service('productpage', '127.100.0.1'),
          service('reviews', '127.100.0.3'),
          workload('reviews-v1', '127.0.1.3', 'reviews', 'v1'),
          workload('reviews-v2', '127.0.1.4', 'reviews', 'v2'),
        ],
        [],
        'bookinfo: first services',
      ),
    );
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      revision: 1,
      changeId: expect.any(String),
      hash: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    expect(r.body.events).toHaveLength(4);
    expect(r.body.events[0]).toMatchObject({
      revision: 1,
      seq: 0,
      op: 'put',
      kind: 'Service',
      namespace: 'default',
    });
    expect(r.headers.get('location')).toBe('/v1/revisions/1');
  });

  test('an apply that changes nothing is 200 unchanged and makes no revision', async () => {
    const r = await post(change([service('productpage', '127.100.0.1')], [], 'again'));
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ revision: 1, unchanged: true });
    const gone = await post(change([], [{ kind: 'Service', name: 'never-existed' }], 'delete nothing'));
    expect(gone.body).toEqual({ revision: 1, unchanged: true });
    expect(await api.head()).toBe(1);
  });

  test('puts and deletes in one change are one revision; references are checked against the result', async () => {
    const r = await post(
      change(
        [
          route('reviews', 'reviews', { v1: 90, v2: 10 }),
          policy('reviews-allow', 'reviews', 'ALLOW', ['productpage']),
        ],
        [{ kind: 'Workload', namespace: 'default', name: 'reviews-v2' }],
        'canary 10% and lock down reviews',
      ),
    );
    expect(r.status).toBe(201);
    expect(r.body.revision).toBe(2);
    expect(r.body.events.map((e: { op: string; kind: string }) => `${e.op} ${e.kind}`).sort()).toEqual([
      'delete Workload',
      'put AuthorizationPolicy',
      'put Route',
    ]);
  });

  test('a change with expectedRevision equal to the head is accepted', async () => {
    const r = await post(
      change([service('ratings', '127.100.0.4')], [], 'add ratings', { expectedRevision: 2 }),
    );
    expect(r.status).toBe(201);
    expect(r.body.revision).toBe(3);
  });

  test('the actor is the token name and the request id is recorded', async () => {
    const r = await post(change([service('details', '127.100.0.2')], [], 'add details'), {
      'x-request-id': 'req-details-1',
    });
    expect(r.headers.get('x-request-id')).toBe('req-details-1');
    const cs = await api.call('GET', `/v1/revisions/${r.body.revision}`);
    expect(cs.body).toMatchObject({
      actor: 'alice',
      reason: 'add details',
      requestId: 'req-details-1',
      eventCount: 1,
    });
  });

  test('the request log has exactly one line per request, with the revision it wrote', async () => {
    const r = await post(change([service('details', '127.100.0.2', 9081)], [], 'details port'), {
      'x-request-id': 'req-log-1',
    });
    expect(r.status).toBe(201);
    const lines = api.logs.filter((l) => l.requestId === 'req-log-1');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      msg: 'request',
      actor: 'alice',
      method: 'POST',
      path: '/v1/changes',
      route: '/v1/changes',
      status: 201,
      revision: r.body.revision,
    });
    expect(lines[0]!.durationMs).toEqual(expect.any(Number));
  });
});

describe('reads', () => {
  test('GET /v1/resources lists the current state, filtered by kind and namespace', async () => {
    const all = await api.call('GET', '/v1/resources', { token: operator });
    expect(all.status).toBe(200);
    expect(all.body.revision).toBe(5);
    const keys = all.body.items.map((r: { kind: string; name: string }) => `${r.kind}/${r.name}`);
    expect(keys).toEqual(
      expect.arrayContaining([
        'Service/productpage',
        'Service/reviews',
        'Route/reviews',
        'Workload/reviews-v1',
      ]),
    );
    expect(keys).not.toContain('Workload/reviews-v2');
    const services = await api.call('GET', '/v1/resources?kind=Service');
    expect(services.body.items.every((r: { kind: string }) => r.kind === 'Service')).toBe(true);
    expect(services.body.items).toHaveLength(4);
    const none = await api.call('GET', '/v1/resources?namespace=other');
    expect(none.body.items).toEqual([]);
  });

  test('GET /v1/resources?revision=N is the state at N', async () => {
    const at1 = await api.call('GET', '/v1/resources?revision=1');
    expect(at1.body.revision).toBe(1);
    expect(at1.body.items.map((r: { name: string }) => r.name).sort()).toEqual([
      'productpage',
      'reviews',
      'reviews-v1',
      'reviews-v2',
    ]);
    const at0 = await api.call('GET', '/v1/resources?revision=0');
    expect(at0.body).toEqual({ revision: 0, items: [] });
  });

  test('GET one resource, now and at a past revision; 404 when absent', async () => {
    const now = await api.call('GET', '/v1/resources/Service/default/details');
    expect(now.status).toBe(200);
    expect(now.body.resource).toMatchObject({ kind: 'Service', name: 'details', version: 5 });
    expect(now.body.resource.spec.ports[0].port).toBe(9081);
    const before = await api.call('GET', '/v1/resources/Service/default/details?revision=4');
    expect(before.body.resource.spec.ports[0].port).toBe(9080);
    const deleted = await api.call('GET', '/v1/resources/Workload/default/reviews-v2');
    expect(deleted.status).toBe(404);
    expect(deleted.body.error.code).toBe('NOT_FOUND');
    const past = await api.call('GET', '/v1/resources/Workload/default/reviews-v2?revision=1');
    expect(past.status).toBe(200);
    expect((await api.call('GET', '/v1/resources/Gateway/default/x')).status).toBe(400);
  });

  test('GET .../history lists every event of a resource with actor and reason', async () => {
    const h = await api.call('GET', '/v1/resources/Workload/default/reviews-v2/history');
    expect(h.status).toBe(200);
    expect(h.body.items.map((e: { op: string; revision: number }) => [e.op, e.revision])).toEqual([
      ['put', 1],
      ['delete', 2],
    ]);
    expect(h.body.items[1]).toMatchObject({
      actor: 'alice',
      reason: 'canary 10% and lock down reviews',
      prevVersion: 1,
    });
    expect((await api.call('GET', '/v1/resources/Service/default/nothing/history')).status).toBe(404);
  });

  test('GET /v1/revisions pages through history; /v1/revisions/:rev has the events', async () => {
    const all = await api.call('GET', '/v1/revisions');
    expect(all.body.headRevision).toBe(5);
    expect(all.body.items.map((c: { revision: number }) => c.revision)).toEqual([1, 2, 3, 4, 5]);
    expect(all.body.items[0]).toMatchObject({
      actor: 'alice',
      reason: 'bookinfo: first services',
      eventCount: 4,
    });
    expect(all.body.items[0].events).toBeUndefined();
    expect(all.body.next).toBeNull();
    const page = await api.call('GET', '/v1/revisions?from=2&limit=2');
    expect(page.body.items.map((c: { revision: number }) => c.revision)).toEqual([2, 3]);
    expect(page.body.next).toBe(4);
    const one = await api.call('GET', '/v1/revisions/2');
    expect(one.body.events).toHaveLength(3);
    expect(one.body.prevHash).toBe(all.body.items[0].hash);
    expect((await api.call('GET', '/v1/revisions/42')).status).toBe(404);
    expect((await api.call('GET', '/v1/revisions/abc')).status).toBe(400);
  });

  test('GET /v1/diff names added, removed and changed resources with before and after', async () => {
    const d = await api.call('GET', '/v1/diff?from=1&to=5');
    expect(d.status).toBe(200);
    expect(d.body.from).toBe(1);
    expect(d.body.to).toBe(5);
    const names = (xs: { kind: string; name: string }[]) => xs.map((x) => `${x.kind}/${x.name}`);
    expect(names(d.body.added)).toEqual([
      'AuthorizationPolicy/reviews-allow',
      'Route/reviews',
      'Service/details',
      'Service/ratings',
    ]);
    expect(names(d.body.removed)).toEqual(['Workload/reviews-v2']);
    expect(d.body.changed).toEqual([]);
    const changed = await api.call('GET', '/v1/diff?from=4&to=5');
    expect(changed.body.changed).toHaveLength(1);
    expect(changed.body.changed[0].before.ports[0].port).toBe(9080);
    expect(changed.body.changed[0].after.ports[0].port).toBe(9081);
    const none = await api.call('GET', '/v1/diff?from=5&to=5');
    expect(none.body).toMatchObject({ added: [], removed: [], changed: [] });
    const reverse = await api.call('GET', '/v1/diff?from=5&to=1');
    expect(names(reverse.body.removed)).toEqual(names(d.body.added));
  });

  test('GET /v1/snapshot is the current state with its revision and hash, for viewers', async () => {
    const viewer = (await api.call('POST', '/v1/tokens', { body: { name: 'agent-node-a', role: 'viewer' } }))
      .body.token;
    const s = await api.call('GET', '/v1/snapshot', { token: viewer });
    expect(s.status).toBe(200);
    const head = await api.call('GET', '/v1/revisions/5');
    expect(s.body).toMatchObject({ cluster: 'test', revision: 5, hash: head.body.hash });
    const now = await api.call('GET', '/v1/resources');
    expect(s.body.resources).toEqual(now.body.items);
  });
});

describe('concurrency', () => {
  test('20 concurrent changes with the same expectedRevision: one 201, nineteen 409, no gaps', async () => {
    const head = await api.head();
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        post(
          change([service(`race-${i}`, `127.100.1.${i + 1}`)], [], `race ${i}`, { expectedRevision: head }),
        ),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(19);
    for (const r of results.filter((x) => x.status === 409)) {
      expect(r.body.error).toMatchObject({ code: 'CONFLICT', headRevision: head + 1 });
      expect(r.body.error.details[0].path).toBe('expectedRevision');
    }
    expect(await api.head()).toBe(head + 1);
    const revs = (await api.call('GET', '/v1/revisions?limit=1000')).body.items.map(
      (c: { revision: number }) => c.revision,
    );
    expect(revs).toEqual(Array.from({ length: head + 1 }, (_, i) => i + 1));
  });

  test('20 concurrent changes without expectedRevision all land, on consecutive revisions', async () => {
    const head = await api.head();
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        post(change([service(`free-${i}`, `127.100.2.${i + 1}`)], [], `free ${i}`)),
      ),
    );
    expect(results.every((r) => r.status === 201)).toBe(true);
    expect(results.map((r) => r.body.revision).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 20 }, (_, i) => head + i + 1),
    );
    const verify = await api.call('GET', '/v1/audit/verify');
    expect(verify.body).toMatchObject({ ok: true, headRevision: head + 20 });
  });

  test('20 concurrent changes claiming the same VIP: exactly one wins', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        post(change([service(`vip-${i}`, '127.100.3.1')], [], `vip ${i}`)),
      ),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    const losers = results.filter((r) => r.status === 400);
    expect(losers).toHaveLength(19);
    expect(losers[0]!.body.error.details[0].path).toBe('apply[0].spec.ports[0]');
  });
});

describe('idempotency', () => {
  const body = change([service('idem', '127.100.4.1')], [], 'idempotent create');

  test('a repeated Idempotency-Key returns the original result and writes nothing', async () => {
    const first = await post(body, { 'idempotency-key': 'create-idem-1' });
    expect(first.status).toBe(201);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const head = await api.head();
    const again = await post(body, { 'idempotency-key': 'create-idem-1' });
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
    // Key order does not make it a different request.
    const reordered = await post(
      { delete: [], apply: body.apply, reason: body.reason },
      { 'idempotency-key': 'create-idem-1' },
    );
    expect(reordered.status).toBe(201);
    expect(reordered.body.revision).toBe(first.body.revision);
    expect(await api.head()).toBe(head);
  });

  test('the same key with a different body is 409 and writes nothing', async () => {
    const head = await api.head();
    const r = await post(change([service('idem-other', '127.100.4.2')], [], 'other'), {
      'idempotency-key': 'create-idem-1',
    });
    expect(r.status).toBe(409);
    expect(r.body.error).toMatchObject({ code: 'CONFLICT', headRevision: head });
    expect(r.body.error.details[0].path).toBe('idempotencyKey');
    expect(await api.head()).toBe(head);
  });

  test('keys are per actor: another token with the same key makes its own revision', async () => {
    const head = await api.head();
    const r = await post(
      change([service('idem-admin', '127.100.4.3')], [], 'admin'),
      { 'idempotency-key': 'create-idem-1' },
      api.adminToken,
    );
    expect(r.status).toBe(201);
    expect(r.body.revision).toBe(head + 1);
  });

  test('concurrent requests with one key make one revision', async () => {
    const head = await api.head();
    const b = change([service('idem-race', '127.100.4.4')], [], 'race with a key');
    const results = await Promise.all(
      Array.from({ length: 8 }, () => post(b, { 'idempotency-key': 'race-key' })),
    );
    expect(results.every((r) => r.status === 201)).toBe(true);
    expect(new Set(results.map((r) => r.body.revision))).toEqual(new Set([head + 1]));
    expect(results.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(7);
    expect(await api.head()).toBe(head + 1);
  });
});
