import { EventStore } from '@meshplane/event-store';
import { type ApiHarness, change, route, service, startApi, workload } from './api-harness';

/* History is never rewritten: a rollback is a new revision that restores an old state. */

let api: ApiHarness;
let operator: string;

type Item = { kind: string; namespace: string; name: string; spec: unknown; origin?: string };
const shape = (items: Item[]) =>
  items.map(({ kind, namespace, name, spec, origin }) => ({ kind, namespace, name, spec, origin }));
const stateAt = async (rev?: number) =>
  shape(
    (await api.call('GET', rev === undefined ? '/v1/resources' : `/v1/resources?revision=${rev}`)).body.items,
  );

beforeAll(async () => {
  api = await startApi('api_rollback');
  operator = (await api.call('POST', '/v1/tokens', { body: { name: 'bob', role: 'operator' } })).body.token;
});

afterAll(async () => {
  await api?.close();
});

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  api.call('POST', path, { body, headers, token: operator });

test('round trip: five revisions, back to 2, then the rollback rolled back', async () => {
  const steps = [
    change(
      [service('reviews', '127.100.0.3'), workload('reviews-v1', '127.0.1.3', 'reviews', 'v1')],
      [],
      'r1',
    ),
    change(
      [workload('reviews-v2', '127.0.1.4', 'reviews', 'v2'), route('reviews', 'reviews', { v1: 90, v2: 10 })],
      [],
      'r2',
    ),
    change([route('reviews', 'reviews', { v1: 50, v2: 50 }), service('ratings', '127.100.0.4')], [], 'r3'),
    change(
      [],
      [
        { kind: 'Route', name: 'reviews' },
        { kind: 'Workload', name: 'reviews-v1' },
      ],
      'r4',
    ),
    // Moves reviews to a new VIP and gives its old VIP to a new Service: a rollback must order these.
    change([service('reviews', '127.100.0.30'), service('legacy', '127.100.0.3')], [], 'r5'),
  ];
  for (const [i, body] of steps.entries()) {
    const r = await post('/v1/changes', body);
    expect(r.status).toBe(201);
    expect(r.body.revision).toBe(i + 1);
  }
  const at2 = await stateAt(2);
  const at5 = await stateAt(5);

  // Dry run: the diff, and nothing written.
  const dry = await post('/v1/rollback', { toRevision: 2, reason: 'preview', dryRun: true });
  expect(dry.status).toBe(200);
  expect(dry.body).toMatchObject({ dryRun: true, fromRevision: 5, toRevision: 2, unchanged: false });
  expect(dry.body.diff.added.map((r: Item) => r.name).sort()).toEqual(['reviews', 'reviews-v1']);
  expect(dry.body.diff.removed.map((r: Item) => r.name).sort()).toEqual(['legacy', 'ratings']);
  expect(await api.head()).toBe(5);

  const rb = await post(
    '/v1/rollback',
    { toRevision: 2, reason: 'canary went bad' },
    { 'x-request-id': 'rollback-1' },
  );
  expect(rb.status).toBe(201);
  expect(rb.body).toMatchObject({ revision: 6, restoredFromRevision: 2 });
  expect(await stateAt()).toEqual(at2);
  expect(await stateAt(6)).toEqual(at2);

  const history = await api.call('GET', '/v1/revisions');
  expect(history.body.items.map((c: { revision: number }) => c.revision)).toEqual([1, 2, 3, 4, 5, 6]);
  expect(history.body.items[5]).toMatchObject({
    actor: 'bob',
    reason: 'canary went bad',
    restoredFromRevision: 2,
  });

  const audit = await api.call('GET', '/v1/audit?actor=bob&type=change');
  const entry = audit.body.items.find((e: { revision: number }) => e.revision === 6);
  expect(entry).toMatchObject({
    type: 'change',
    actor: 'bob',
    restoredFromRevision: 2,
    reason: 'canary went bad',
    requestId: 'rollback-1',
  });

  // Roll back the rollback: the state of 5 again, as revision 7.
  const back = await post('/v1/rollback', { toRevision: 5, reason: 'undo the rollback' });
  expect(back.status).toBe(201);
  expect(back.body).toMatchObject({ revision: 7, restoredFromRevision: 5 });
  expect(await stateAt()).toEqual(at5);
  expect((await api.call('GET', '/v1/audit/verify')).body).toMatchObject({ ok: true, headRevision: 7 });
});

test('rolling back to the head, or to a revision with the same state, is a no-op', async () => {
  const head = await api.head();
  const r = await post('/v1/rollback', { toRevision: head, reason: 'nothing to do' });
  expect(r.status).toBe(200);
  expect(r.body).toEqual({ revision: head, unchanged: true });
  const same = await post('/v1/rollback', { toRevision: 5, reason: 'state of 5 is the state of 7' });
  expect(same.body).toEqual({ revision: head, unchanged: true });
  const dry = await post('/v1/rollback', { toRevision: head, reason: 'preview', dryRun: true });
  expect(dry.body).toMatchObject({ unchanged: true, diff: { added: [], removed: [], changed: [] } });
  expect(await api.head()).toBe(head);
});

test('rolling back to a revision that does not exist is 404', async () => {
  const r = await post('/v1/rollback', { toRevision: 1000, reason: 'too far' });
  expect(r.status).toBe(404);
  expect(r.body.error.details[0].path).toBe('toRevision');
});

test('a stale expectedRevision on a rollback is 409', async () => {
  const head = await api.head();
  const r = await post('/v1/rollback', { toRevision: 1, reason: 'stale', expectedRevision: head - 1 });
  expect(r.status).toBe(409);
  expect(r.body.error.headRevision).toBe(head);
  expect(await api.head()).toBe(head);
});

test('a rollback leaves resources imported from another cluster alone', async () => {
  const store = await EventStore.open({ databaseUrl: api.db.url, cluster: 'test' });
  try {
    const before = await api.head();
    // Federation writes imported resources with an origin; the API cannot.
    const imported = await store.append(
      [
        {
          op: 'put',
          kind: 'Service',
          namespace: 'default',
          name: 'east-payments',
          origin: 'east',
          spec: {
            vip: '127.100.9.1',
            ports: [{ port: 443, protocol: 'TCP' }],
            selector: { app: 'payments' },
          },
        },
      ],
      { actor: 'federation:east', reason: 'import from east' },
    );
    expect(imported.status).toBe('appended');
    const local = await post(
      '/v1/changes',
      change([service('local-new', '127.100.9.2')], [], 'local after import'),
    );
    expect(local.status).toBe(201);

    const rb = await post('/v1/rollback', { toRevision: before, reason: 'drop local-new' });
    expect(rb.status).toBe(201);
    const names = (await stateAt()).map((r) => r.name);
    expect(names).toContain('east-payments');
    expect(names).not.toContain('local-new');
    const events = (await api.call('GET', `/v1/revisions/${rb.body.revision}`)).body.events;
    expect(events.map((e: Item) => e.name)).toEqual(['local-new']);
  } finally {
    await store.close();
  }
});
