import { ValidationError } from './errors';
import { formatPath, isIPv4, isLabelKey, parseResource, parseResourceRef, parseSpec } from './schemas';

// Envelope-level and Service/Workload cases; Route/Policy live in schemas-kinds.spec.ts.

const service = (spec: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => ({
  kind: 'Service',
  name: 'reviews',
  spec: { vip: '127.100.0.1', ports: [{ port: 80, protocol: 'TCP' }], selector: { app: 'reviews' }, ...spec },
  ...extra,
});

const workload = (spec: Record<string, unknown> = {}) => ({
  kind: 'Workload',
  namespace: 'shop',
  name: 'reviews-v1-0',
  spec: { address: '127.0.1.10', node: 'node-a', labels: { app: 'reviews' }, identity: 'reviews', ...spec },
});

/** Runs parseResource and returns its details, failing the test when it does not throw. */
function detailsOf(input: unknown, path = ''): { path: string; message: string }[] {
  try {
    parseResource(input, path);
  } catch (e) {
    expect(e).toBeInstanceOf(ValidationError);
    return (e as ValidationError).details;
  }
  throw new Error('expected a ValidationError');
}

function expectDetail(input: unknown, path: string, message: string | RegExp, prefix = '') {
  const details = detailsOf(input, prefix);
  const hit = details.find((d) => d.path === path);
  expect(hit).toBeDefined();
  expect(hit!.message).toMatch(message);
}

describe('helpers', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.100.255.255', true],
    ['0.0.0.0', true],
    ['256.1.1.1', false],
    ['1.2.3', false],
    ['1.2.3.4.5', false],
    ['127.0.0.01', false],
    ['127.00.0.1', false],
    ['127.0.0.1 ', false],
    ['::1', false],
    ['', false],
  ])('isIPv4(%j) = %s', (s, ok) => expect(isIPv4(s)).toBe(ok));

  it.each([
    ['app', true],
    ['app.kubernetes.io/name', true],
    ['Tier_1.x', true],
    ['a'.repeat(63), true],
    ['a'.repeat(64), false],
    ['-app', false],
    ['app-', false],
    ['/app', false],
    ['Example.com/app', false],
    ['a/b/c', false],
    ['', false],
  ])('isLabelKey(%j) = %s', (s, ok) => expect(isLabelKey(s)).toBe(ok));

  it('formats paths with dots, indexes and quoted odd keys', () => {
    expect(formatPath('', ['spec', 'ports', 1, 'port'])).toBe('spec.ports[1].port');
    expect(formatPath('apply[0]', ['spec'])).toBe('apply[0].spec');
    expect(formatPath('x', ['labels', 'a.b/c'])).toBe('x.labels["a.b/c"]');
    expect(formatPath('', [])).toBe('');
  });
});

describe('parseResource: envelope', () => {
  it('defaults the namespace and returns the normalized resource', () => {
    expect(parseResource(service())).toEqual({
      kind: 'Service',
      namespace: 'default',
      name: 'reviews',
      spec: { vip: '127.100.0.1', ports: [{ port: 80, protocol: 'TCP' }], selector: { app: 'reviews' } },
    });
  });

  it('keeps an explicit namespace', () => {
    expect(parseResource(workload()).namespace).toBe('shop');
  });

  it.each([
    [null, '', /must be an object, got null/],
    [[], '', /got array/],
    ['Service', '', /got string/],
  ])('rejects non-objects (%j)', (input, path, msg) => expectDetail(input, path, msg));

  it('prefixes every path, including the root', () => {
    expectDetail(42, 'apply[3]', /must be an object/, 'apply[3]');
    expectDetail(
      service({
        ports: [
          { port: 80, protocol: 'TCP' },
          { port: 0, protocol: 'TCP' },
        ],
      }),
      'apply[0].spec.ports[1].port',
      'must be an integer between 1 and 65535',
      'apply[0]',
    );
  });

  it('reports an unknown kind with the known kinds, and still checks the rest', () => {
    const details = detailsOf({ kind: 'Gateway', name: 'Bad_Name', spec: {}, extra: 1 }, 'apply[2]');
    expect(details).toEqual(
      expect.arrayContaining([
        {
          path: 'apply[2].kind',
          message: expect.stringContaining('Service, Workload, Route, AuthorizationPolicy'),
        },
        { path: 'apply[2].name', message: expect.stringContaining('DNS-1123') },
        { path: 'apply[2].extra', message: 'unknown field' },
      ]),
    );
  });

  it('reports a missing kind as required', () => {
    expectDetail({ name: 'x', spec: {} }, 'kind', /is required; must be one of Service/);
  });

  it.each([
    ['name', { name: 'Reviews' }],
    ['name', { name: 'reviews_v1' }],
    ['name', { name: '-reviews' }],
    ['name', { name: 'reviews-' }],
    ['name', { name: 'a'.repeat(64) }],
    ['name', { name: '' }],
    ['name', { name: 7 }],
    ['namespace', { namespace: 'Default' }],
    ['namespace', { namespace: 'a.b' }],
  ])('rejects a bad %s (%j)', (field, extra) => {
    expectDetail(service({}, extra), field, /DNS-1123|must be a string/);
  });

  it('accepts a 63-character name', () => {
    expect(parseResource(service({}, { name: 'a'.repeat(63) })).name).toHaveLength(63);
  });

  it('requires name and spec', () => {
    const details = detailsOf({ kind: 'Service' });
    expect(details).toEqual([
      { path: 'name', message: 'is required' },
      { path: 'spec', message: 'is required' },
    ]);
  });

  it('rejects unknown fields at top, spec and nested levels, one detail each', () => {
    const details = detailsOf(
      service(
        { selecter: { app: 'x' }, ports: [{ port: 80, protocol: 'TCP', name: 'http' }] },
        { status: {} },
      ),
    );
    expect(details).toEqual([
      { path: 'spec.ports[0].name', message: 'unknown field' },
      { path: 'spec.selecter', message: 'unknown field' },
      { path: 'status', message: 'unknown field' },
    ]);
  });

  it('collects every problem, not only the first', () => {
    const details = detailsOf(
      service({ vip: '1.2.3', ports: [{ port: 65536, protocol: 'SCTP' }] }, { name: 'X' }),
    );
    expect(details.map((d) => d.path).sort()).toEqual(
      ['name', 'spec.ports[0].port', 'spec.ports[0].protocol', 'spec.vip'].sort(),
    );
  });

  it('throws a readable message', () => {
    expect(() => parseResource(service({ vip: '256.1.1.1' }))).toThrow(/spec\.vip must be an IPv4 address/);
  });
});

describe('parseResource: Service', () => {
  it.each([
    ['minimal', {}],
    ['UDP and targetPort', { ports: [{ port: 53, targetPort: 5353, protocol: 'UDP' }] }],
    [
      'same port on TCP and UDP',
      {
        ports: [
          { port: 53, protocol: 'TCP' },
          { port: 53, protocol: 'UDP' },
        ],
      },
    ],
    [
      'edge ports',
      {
        ports: [
          { port: 1, protocol: 'TCP' },
          { port: 65535, targetPort: 1, protocol: 'TCP' },
        ],
      },
    ],
    ['export and affinity', { export: true, affinity: 'local' }],
    ['prefixed label', { selector: { 'app.kubernetes.io/name': 'reviews', empty: '' } }],
  ])('accepts %s', (_label, spec) => {
    expect(() => parseResource(service(spec))).not.toThrow();
  });

  it.each([
    ['spec.vip', { vip: '256.1.1.1' }, 'must be an IPv4 address'],
    ['spec.vip', { vip: '1.2.3' }, 'must be an IPv4 address'],
    ['spec.vip', { vip: '127.100.0.01' }, 'must be an IPv4 address'],
    ['spec.vip', { vip: '127.100.0.1/32' }, 'must be an IPv4 address'],
    ['spec.vip', { vip: 2130706433 }, 'must be a string, got number'],
    ['spec.vip', { vip: undefined }, 'is required'],
    ['spec.ports', { ports: [] }, 'must have at least one port'],
    ['spec.ports', { ports: { port: 80 } }, 'must be an array, got object'],
    [
      'spec.ports[0].port',
      { ports: [{ port: 0, protocol: 'TCP' }] },
      'must be an integer between 1 and 65535',
    ],
    [
      'spec.ports[0].port',
      { ports: [{ port: 65536, protocol: 'TCP' }] },
      'must be an integer between 1 and 65535',
    ],
    [
      'spec.ports[0].port',
      { ports: [{ port: 80.5, protocol: 'TCP' }] },
      'must be an integer between 1 and 65535',
    ],
    ['spec.ports[0].port', { ports: [{ port: '80', protocol: 'TCP' }] }, 'must be a number, got string'],
    ['spec.ports[0].port', { ports: [{ protocol: 'TCP' }] }, 'is required'],
    [
      'spec.ports[0].targetPort',
      { ports: [{ port: 80, targetPort: 0, protocol: 'TCP' }] },
      'between 1 and 65535',
    ],
    ['spec.ports[0].protocol', { ports: [{ port: 80, protocol: 'tcp' }] }, 'must be one of TCP, UDP'],
    ['spec.ports[0].protocol', { ports: [{ port: 80 }] }, 'is required'],
    [
      'spec.ports[1]',
      {
        ports: [
          { port: 80, protocol: 'TCP' },
          { port: 80, targetPort: 8080, protocol: 'TCP' },
        ],
      },
      'duplicate port 80/TCP (also ports[0])',
    ],
    ['spec.selector', { selector: {} }, 'must have at least one label'],
    ['spec.selector', { selector: ['app'] }, 'must be an object'],
    ['spec.selector["bad key"]', { selector: { 'bad key': 'x' } }, 'invalid label key'],
    ['spec.selector.app', { selector: { app: 'Bad Value' } }, 'must be a label value'],
    ['spec.selector.app', { selector: { app: 3 } }, 'must be a string, got number'],
    ['spec.export', { export: 'yes' }, 'must be a boolean, got string'],
    ['spec.affinity', { affinity: 'nearest' }, 'must be one of local, remote, none'],
  ])('rejects %s = %j', (path, spec, message) => {
    expectDetail(service(spec), path, message);
  });
});

describe('parseResource: Workload', () => {
  it.each([
    ['minimal', {}],
    ['empty labels', { labels: {} }],
    ['weight bounds', { weight: 1 }],
    ['weight max', { weight: 1000 }],
  ])('accepts %s', (_label, spec) => {
    expect(() => parseResource(workload(spec))).not.toThrow();
  });

  it.each([
    ['spec.address', { address: '127.0.1.256' }, 'must be an IPv4 address'],
    ['spec.address', { address: 'localhost' }, 'must be an IPv4 address'],
    ['spec.address', { address: null }, 'must be a string, got null'],
    ['spec.node', { node: '' }, 'DNS-1123'],
    ['spec.node', { node: 'node.example' }, 'DNS-1123'],
    ['spec.node', { node: undefined }, 'is required'],
    ['spec.identity', { identity: 'Reviews' }, 'DNS-1123'],
    ['spec.labels', { labels: 'app=reviews' }, 'must be an object'],
    ['spec.labels["-x"]', { labels: { '-x': 'y' } }, 'invalid label key'],
    ['spec.weight', { weight: 0 }, 'must be an integer between 1 and 1000'],
    ['spec.weight', { weight: 1001 }, 'must be an integer between 1 and 1000'],
    ['spec.weight', { weight: 2.5 }, 'must be an integer between 1 and 1000'],
    ['spec.port', { port: 9080 }, 'unknown field'],
  ])('rejects %s = %j', (path, spec, message) => {
    expectDetail(workload(spec), path, message);
  });
});

describe('parseResourceRef', () => {
  it('defaults the namespace', () => {
    expect(parseResourceRef({ kind: 'Route', name: 'r' })).toEqual({
      kind: 'Route',
      namespace: 'default',
      name: 'r',
    });
  });

  it.each([
    [{ kind: 'Route' }, 'delete[1].name', 'is required'],
    [{ kind: 'Nope', name: 'x' }, 'delete[1].kind', 'must be one of Service'],
    [{ kind: 'Route', name: 'x', spec: {} }, 'delete[1].spec', 'unknown field'],
    [{ kind: 'Route', name: 'x', namespace: 'A' }, 'delete[1].namespace', 'DNS-1123'],
    ['Route/default/x', 'delete[1]', 'must be an object'],
  ])('rejects %j at %s', (input, path, message) => {
    try {
      parseResourceRef(input, 'delete[1]');
      throw new Error('expected a ValidationError');
    } catch (e) {
      expect(e).toBeInstanceOf(ValidationError);
      const hit = (e as ValidationError).details.find((d) => d.path === path);
      expect(hit?.message).toContain(message);
    }
  });
});

describe('parseSpec', () => {
  it('validates a spec alone with the given path', () => {
    expect(parseSpec('Workload', workload().spec)).toEqual(workload().spec);
    expect(() => parseSpec('Workload', { ...workload().spec, address: '1.2.3' }, 'x.spec')).toThrow(
      /x\.spec\.address/,
    );
    expect(() => parseSpec('Gateway', {})).toThrow(ValidationError);
  });
});

describe('prototype keys', () => {
  it('rejects an own __proto__ key that zod would silently drop', () => {
    const input = JSON.parse(
      '{"kind":"Workload","name":"w","spec":{"address":"127.0.1.1","node":"n","identity":"i","labels":{"__proto__":"x"}}}',
    );
    expectDetail(input, 'spec.labels.__proto__', 'forbidden field');
    expect(() => parseSpec('Workload', input.spec)).toThrow(/spec\.labels\.__proto__ forbidden field/);
  });
});
