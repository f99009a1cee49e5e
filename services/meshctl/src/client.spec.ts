import { ApiError, MeshClient, normalizeServer, TransportError } from './client';
import { UsageError } from './errors';
import { fakeServer } from './testing/fake-io';

const noSleep = async () => undefined;

describe('MeshClient', () => {
  test('sends the bearer token, JSON and query parameters; skips empty ones', async () => {
    const fake = fakeServer(() => ({ status: 200, body: { revision: 3, items: [] } }));
    const c = new MeshClient({ server: 'http://127.0.0.1:8080/', token: 'tok', fetch: fake.fetch });
    await c.resources({ kind: 'Service', namespace: undefined, revision: 2 });
    const [req] = fake.requests;
    expect(req!.url.toString()).toBe('http://127.0.0.1:8080/v1/resources?kind=Service&revision=2');
    expect(req!.headers.authorization).toBe('Bearer tok');
  });

  test('path segments are escaped', async () => {
    const fake = fakeServer(() => ({
      status: 404,
      body: { error: { code: 'NOT_FOUND', message: 'nope', details: [] } },
    }));
    const c = new MeshClient({ server: 'http://127.0.0.1:8080', fetch: fake.fetch });
    await expect(c.resource({ kind: 'Service', namespace: 'default', name: '../x?y' })).rejects.toThrow(
      ApiError,
    );
    expect(fake.requests[0]!.url.pathname).toBe('/v1/resources/Service/default/..%2Fx%3Fy');
  });

  test('an API error keeps code, message, details and the head of a conflict', async () => {
    const fake = fakeServer(() => ({
      status: 409,
      body: {
        error: {
          code: 'CONFLICT',
          message: 'expected 3',
          details: [{ path: 'expectedRevision', message: 'x' }],
          headRevision: 5,
        },
      },
    }));
    const c = new MeshClient({ server: 'http://127.0.0.1:8080', fetch: fake.fetch });
    const err = (await c.changes({ reason: 'r', apply: [] }).catch((e) => e)) as ApiError;
    expect(err).toBeInstanceOf(ApiError);
    expect([err.status, err.code, err.message, err.headRevision]).toEqual([409, 'CONFLICT', 'expected 3', 5]);
    expect(err.details).toEqual([{ path: 'expectedRevision', message: 'x' }]);
  });

  test('an error that is not the API shape still says what came back', async () => {
    const fake = fakeServer(() => ({ status: 502, text: '<html>bad gateway</html>' }));
    const c = new MeshClient({ server: 'http://127.0.0.1:8080', fetch: fake.fetch, retries: 0 });
    await expect(c.verify()).rejects.toThrow(/HTTP 502.*bad gateway/);
  });

  test('a 200 that is not JSON is a protocol error', async () => {
    const fake = fakeServer(() => ({ status: 200, text: 'hello' }));
    const c = new MeshClient({ server: 'http://127.0.0.1:8080', fetch: fake.fetch });
    await expect(c.verify()).rejects.toThrow(/not JSON; is http:\/\/127.0.0.1:8080 a Meshplane API/);
  });

  test('GETs and keyed writes are retried on 503; writes without a key are not', async () => {
    let n = 0;
    const fake = fakeServer(() =>
      ++n < 3 ? { status: 503, body: {} } : { status: 200, body: { headRevision: 1, items: [], next: null } },
    );
    const c = new MeshClient({ server: 'http://127.0.0.1:8080', fetch: fake.fetch, sleep: noSleep });
    await expect(c.head()).resolves.toBe(1);
    expect(fake.requests).toHaveLength(3);

    const down = fakeServer(() => ({
      status: 503,
      body: { error: { code: 'UNAVAILABLE', message: 'db down', details: [] } },
    }));
    const w = new MeshClient({ server: 'http://127.0.0.1:8080', fetch: down.fetch, sleep: noSleep });
    await expect(w.changes({ reason: 'r', apply: [] })).rejects.toThrow('db down');
    expect(down.requests).toHaveLength(1);
    await expect(w.changes({ reason: 'r', apply: [] }, 'key-1')).rejects.toThrow('db down');
    expect(down.requests).toHaveLength(4);
    expect(down.requests[3]!.headers['idempotency-key']).toBe('key-1');
  });

  test('connection failures and timeouts are transport errors', async () => {
    const refused = new MeshClient({
      server: 'http://127.0.0.1:8080',
      fetch: async () => {
        throw Object.assign(new TypeError('fetch failed'), {
          cause: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }),
        });
      },
    });
    await expect(refused.verify()).rejects.toThrow(
      new TransportError('cannot reach the API at http://127.0.0.1:8080 (ECONNREFUSED)', 'connect'),
    );

    const slow = new MeshClient({
      server: 'http://127.0.0.1:8080',
      timeoutMs: 20,
      fetch: (_url, init) =>
        new Promise((_resolve, reject) =>
          init.signal?.addEventListener('abort', () => reject(init.signal?.reason)),
        ),
    });
    const err = (await slow.verify().catch((e) => e)) as TransportError;
    expect(err.reason).toBe('timeout');
    expect(err.message).toMatch(/timed out after 20 ms/);
  });

  test('server URLs', () => {
    expect(normalizeServer('http://127.0.0.1:8080/')).toBe('http://127.0.0.1:8080');
    expect(normalizeServer('https://127.0.0.1/mesh/')).toBe('https://127.0.0.1/mesh');
    expect(() => normalizeServer('127.0.0.1:8080')).toThrow(UsageError);
    expect(() => normalizeServer('ftp://127.0.0.1')).toThrow(UsageError);
  });
});
