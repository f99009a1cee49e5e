import { ValidationError } from './errors';
import { parseResource } from './schemas';

// Route and AuthorizationPolicy schemas; envelope, Service and Workload are in schemas.spec.ts.

const route = (spec: Record<string, unknown> = {}) => ({
  kind: 'Route',
  name: 'reviews-split',
  spec: {
    service: 'reviews',
    backends: [
      { selector: { app: 'reviews', version: 'v1' }, weight: 90 },
      { selector: { app: 'reviews', version: 'v2' }, weight: 10 },
    ],
    ...spec,
  },
});

const policy = (spec: Record<string, unknown> = {}) => ({
  kind: 'AuthorizationPolicy',
  name: 'reviews-allow',
  spec: { service: 'reviews', action: 'ALLOW', from: [{ identity: 'productpage' }], ...spec },
});

function expectDetail(input: unknown, path: string, message: string) {
  let details: { path: string; message: string }[] = [];
  try {
    parseResource(input);
  } catch (e) {
    expect(e).toBeInstanceOf(ValidationError);
    details = (e as ValidationError).details;
  }
  expect(details).toContainEqual({ path, message: expect.stringContaining(message) });
}

const backend = (weight: number) => ({ selector: { app: 'reviews' }, weight });

describe('parseResource: Route', () => {
  it.each([
    ['two backends', {}],
    ['a zero-weight backend next to a live one', { backends: [backend(0), backend(1)] }],
    ['max weight', { backends: [backend(10000)] }],
    ['16 backends', { backends: Array.from({ length: 16 }, () => backend(1)) }],
  ])('accepts %s', (_label, spec) => {
    expect(parseResource(route(spec)).spec).toMatchObject({ service: 'reviews' });
  });

  it.each([
    ['spec.service', { service: 'Reviews' }, 'DNS-1123'],
    ['spec.service', { service: undefined }, 'is required'],
    ['spec.service', { service: { name: 'reviews' } }, 'must be a string, got object'],
    ['spec.backends', { backends: [] }, 'must have at least one backend'],
    ['spec.backends', { backends: Array.from({ length: 17 }, () => backend(1)) }, 'at most 16 backends'],
    ['spec.backends', { backends: [backend(0), backend(0)] }, 'at least one backend must have weight > 0'],
    ['spec.backends[1].weight', { backends: [backend(1), backend(-1)] }, 'between 0 and 10000'],
    ['spec.backends[0].weight', { backends: [backend(10001)] }, 'between 0 and 10000'],
    ['spec.backends[0].weight', { backends: [backend(0.5)] }, 'between 0 and 10000'],
    ['spec.backends[0].weight', { backends: [{ selector: { app: 'x' } }] }, 'is required'],
    ['spec.backends[0].selector', { backends: [{ selector: {}, weight: 1 }] }, 'at least one label'],
    ['spec.backends[0].selector.app', { backends: [{ selector: { app: '-x' }, weight: 1 }] }, 'label value'],
    ['spec.backends[0].port', { backends: [{ ...backend(1), port: 9080 }] }, 'unknown field'],
    ['spec.timeout', { timeout: '5s' }, 'unknown field'],
  ])('rejects %s = %j', (path, spec, message) => {
    expectDetail(route(spec), path, message);
  });
});

describe('parseResource: AuthorizationPolicy', () => {
  it.each([
    ['minimal', {}],
    ['DENY with ports', { action: 'DENY', ports: [9080, 1, 65535] }],
    ['several sources', { from: [{ identity: 'a' }, { identity: 'b' }] }],
  ])('accepts %s', (_label, spec) => {
    expect(() => parseResource(policy(spec))).not.toThrow();
  });

  it.each([
    ['spec.action', { action: 'allow' }, 'must be one of ALLOW, DENY'],
    ['spec.action', { action: undefined }, 'is required'],
    ['spec.from', { from: [] }, 'at least one source'],
    ['spec.from', { from: { identity: 'a' } }, 'must be an array'],
    ['spec.from[0].identity', { from: [{ identity: 'Product_Page' }] }, 'DNS-1123'],
    ['spec.from[0].identity', { from: [{}] }, 'is required'],
    ['spec.from[0].namespace', { from: [{ identity: 'a', namespace: 'x' }] }, 'unknown field'],
    ['spec.ports', { ports: [] }, 'must not be empty'],
    ['spec.ports[1]', { ports: [80, 0] }, 'between 1 and 65535'],
    ['spec.ports[0]', { ports: [65536] }, 'between 1 and 65535'],
    ['spec.ports[2]', { ports: [80, 81, 80] }, 'duplicate port 80'],
    ['spec.ports', { ports: 80 }, 'must be an array, got number'],
    ['spec.service', { service: '' }, 'DNS-1123'],
  ])('rejects %s = %j', (path, spec, message) => {
    expectDetail(policy(spec), path, message);
  });
});
