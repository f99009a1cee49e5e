import type { AddressInfo } from 'node:net';
import { createApiApp } from '../../services/api/src/app';
import { AUTH_CACHE_TTL_MS } from '../../services/api/src/tokens/tokens.service';
import { withClient } from '../harness/db';
import { waitFor } from '../harness/wait';
import { type ApiHarness, BOOTSTRAP_TOKEN, change, service, startApi } from './api-harness';

/* Tokens (hashed, roles, revocation), the audit timeline and the hash-chain check. */

let api: ApiHarness;

beforeAll(async () => {
  api = await startApi('api_tokens');
});

afterAll(async () => {
  await api?.close();
});

describe('tokens', () => {
  let carol: { id: string; token: string };

  test('an admin creates a token; the plaintext is returned once and stored only as a hash', async () => {
    const r = await api.call('POST', '/v1/tokens', { body: { name: 'carol', role: 'operator' } });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      name: 'carol',
      role: 'operator',
      createdBy: 'bootstrap',
      revokedAt: null,
    });
    expect(r.body.token).toMatch(/^mpt_[A-Za-z0-9_-]{43}$/);
    carol = r.body;
    const rows = await withClient(api.db.url, (c) =>
      c.query('SELECT token_hash FROM api_tokens WHERE id = $1', [carol.id]),
    );
    expect(rows.rows[0].token_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(rows.rows)).not.toContain(carol.token);
  });

  test('GET /v1/tokens lists tokens without secrets', async () => {
    const r = await api.call('GET', '/v1/tokens');
    expect(r.status).toBe(200);
    expect(r.body.items.map((t: { name: string }) => t.name)).toEqual(['bootstrap', 'carol']);
    expect(r.text).not.toContain(carol.token);
    expect(r.text).not.toMatch(/token_?hash/i);
  });

  test('roles: viewer reads, operator writes, admin manages tokens', async () => {
    const viewer = (await api.call('POST', '/v1/tokens', { body: { name: 'dave', role: 'viewer' } })).body
      .token;
    expect((await api.call('GET', '/v1/resources', { token: viewer })).status).toBe(200);
    expect((await api.call('GET', '/v1/audit', { token: viewer })).status).toBe(200);
    expect((await api.call('GET', '/v1/tokens', { token: viewer })).status).toBe(403);
    const write = change([service('web', '127.100.5.1')], [], 'carol writes');
    expect((await api.call('POST', '/v1/changes', { body: write, token: viewer })).status).toBe(403);
    expect((await api.call('POST', '/v1/changes', { body: write, token: carol.token })).status).toBe(201);
    expect((await api.call('GET', '/v1/tokens', { token: carol.token })).status).toBe(403);
    expect((await api.call('GET', '/v1/resources', { token: null })).status).toBe(401);
  });

  test('a revoked token is refused at once; revoking twice is a no-op', async () => {
    const r = await api.call('DELETE', `/v1/tokens/${carol.id}`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id: carol.id, revokedBy: 'bootstrap' });
    expect(r.body.revokedAt).toEqual(expect.any(String));
    const refused = await api.call('GET', '/v1/resources', { token: carol.token });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const again = await api.call('DELETE', `/v1/tokens/${carol.id}`);
    expect(again.status).toBe(200);
    expect(again.body.revokedAt).toBe(r.body.revokedAt);
    // The name is free again once its token is revoked.
    expect((await api.call('POST', '/v1/tokens', { body: { name: 'carol', role: 'viewer' } })).status).toBe(
      201,
    );
  });

  test('token creation and revocation are in the audit, in order, marked as token entries', async () => {
    const r = await api.call('GET', '/v1/audit?type=token');
    expect(r.status).toBe(200);
    expect(
      r.body.items.map(
        (e: { action: string; tokenName: string; actor: string }) => `${e.actor} ${e.action} ${e.tokenName}`,
      ),
    ).toEqual([
      'system:bootstrap create bootstrap',
      'bootstrap create carol',
      'bootstrap create dave',
      'bootstrap revoke carol',
      'bootstrap create carol',
    ]);
    expect(r.body.items.every((e: { type: string }) => e.type === 'token')).toBe(true);
  });

  test('the token audit table is append-only', async () => {
    await expect(
      withClient(api.db.url, (c) => c.query("UPDATE api_token_audit SET actor = 'mallory'")),
    ).rejects.toThrow(/append-only/);
    await expect(withClient(api.db.url, (c) => c.query('DELETE FROM api_token_audit'))).rejects.toThrow(
      /append-only/,
    );
  });
});

test('on another replica a revoked token stops working within the auth cache bound', async () => {
  const frank = (await api.call('POST', '/v1/tokens', { body: { name: 'frank', role: 'viewer' } })).body;
  const replica = await createApiApp({
    databaseUrl: api.db.url,
    port: 0,
    host: '127.0.0.1',
    cluster: 'test',
    logSink: () => undefined,
  });
  try {
    await replica.listen(0, '127.0.0.1');
    const url = `http://127.0.0.1:${(replica.getHttpServer().address() as AddressInfo).port}/v1/resources`;
    const get = () =>
      fetch(url, { headers: { authorization: `Bearer ${frank.token}` } }).then((r) => r.status);
    expect(await get()).toBe(200); // now cached on the replica
    expect((await api.call('DELETE', `/v1/tokens/${frank.id}`)).status).toBe(200);
    const revokedAt = Date.now();
    await waitFor(async () => (await get()) === 401, {
      timeoutMs: AUTH_CACHE_TTL_MS + 3000,
      what: 'revocation on the replica',
    });
    expect(Date.now() - revokedAt).toBeLessThan(AUTH_CACHE_TTL_MS + 1000);
  } finally {
    await replica.close();
  }
});

describe('audit', () => {
  test('one timeline of changes and token events, filterable', async () => {
    const all = await api.call('GET', '/v1/audit');
    const types = all.body.items.map((e: { type: string }) => e.type);
    expect(types).toContain('change');
    expect(types).toContain('token');
    const times = all.body.items.map((e: { time: string }) => Date.parse(e.time));
    expect(times).toEqual([...times].sort((a, b) => a - b));

    const byCarol = await api.call('GET', '/v1/audit?actor=carol');
    expect(byCarol.body.items).toHaveLength(1);
    expect(byCarol.body.items[0]).toMatchObject({
      type: 'change',
      actor: 'carol',
      reason: 'carol writes',
      revision: 1,
    });

    const byKind = await api.call('GET', '/v1/audit?kind=Service&name=web');
    expect(byKind.body.items.map((e: { type: string }) => e.type)).toEqual(['change']);
    expect((await api.call('GET', '/v1/audit?kind=Route')).body.items).toEqual([]);

    const future = new Date(Date.now() + 3600_000).toISOString();
    expect((await api.call('GET', `/v1/audit?since=${future}`)).body.items).toEqual([]);
    const past = new Date(Date.now() - 3600_000).toISOString();
    expect((await api.call('GET', `/v1/audit?until=${past}`)).body.items).toEqual([]);
    expect((await api.call('GET', '/v1/audit?limit=2')).body.items).toHaveLength(2);
  });

  test('GET /v1/audit/verify checks the hash chain and names the head', async () => {
    const r = await api.call('GET', '/v1/audit/verify');
    expect(r.status).toBe(200);
    const head = await api.call('GET', '/v1/revisions/1');
    expect(r.body).toMatchObject({ ok: true, headRevision: 1, headHash: head.body.hash });
  });
});

describe('bootstrap token', () => {
  test('a restart with the same MESH_BOOTSTRAP_TOKEN creates nothing new', async () => {
    const second = await createApiApp({
      databaseUrl: api.db.url,
      port: 0,
      host: '127.0.0.1',
      cluster: 'test',
      bootstrapToken: BOOTSTRAP_TOKEN,
      logSink: () => undefined,
    });
    await second.close();
    const tokens = (await api.call('GET', '/v1/tokens')).body.items;
    expect(tokens.filter((t: { name: string }) => t.name.startsWith('bootstrap'))).toHaveLength(1);
  });

  test('a revoked bootstrap token stays revoked across restarts, with a warning', async () => {
    const admin = (await api.call('POST', '/v1/tokens', { body: { name: 'erin', role: 'admin' } })).body
      .token;
    const boot = (await api.call('GET', '/v1/tokens')).body.items.find(
      (t: { name: string }) => t.name === 'bootstrap',
    );
    expect((await api.call('DELETE', `/v1/tokens/${boot.id}`, { token: admin })).status).toBe(200);
    const logs: Record<string, unknown>[] = [];
    const restarted = await createApiApp({
      databaseUrl: api.db.url,
      port: 0,
      host: '127.0.0.1',
      cluster: 'test',
      bootstrapToken: BOOTSTRAP_TOKEN,
      logSink: (l) => logs.push(l),
    });
    await restarted.close();
    expect(logs.some((l) => l.level === 'warn' && String(l.msg).includes('revoked'))).toBe(true);
    expect((await api.call('GET', '/v1/resources')).status).toBe(401);
    expect((await api.call('GET', '/v1/resources', { token: admin })).status).toBe(200);
  });
});
