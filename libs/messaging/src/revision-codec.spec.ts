import type { CommittedEvent } from '@meshplane/domain';
import type { ChangeSet } from '@meshplane/event-store';
import { headers } from '@nats-io/transport-node';
import fc from 'fast-check';
import { changeSetTraceContext, readRevisionHeaders, revisionHeaders } from './publish';
import {
  COMPRESS_ABOVE_BYTES,
  decodeRevision,
  encodeRevision,
  isCompressedRevision,
  RevisionCodecError,
} from './revision-codec';

const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);
const jsonObject = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 });
// JSON cannot tell -0 from 0; specs come from jsonb, which has no -0 either.
const spec = jsonObject.map((o) => JSON.parse(JSON.stringify(o)) as Record<string, unknown>);
const nullableString = fc.option(fc.string({ maxLength: 20 }), { nil: null });

function eventArb(revision: number): fc.Arbitrary<CommittedEvent> {
  const base = {
    revision: fc.constant(revision),
    seq: fc.nat({ max: 1000 }),
    kind: fc.constantFrom('Service', 'Workload', 'AuthorizationPolicy'),
    namespace: fc.string({ minLength: 1, maxLength: 10 }),
    name: fc.string({ minLength: 1, maxLength: 20 }),
    prevVersion: fc.option(fc.nat({ max: revision }), { nil: null }),
    origin: fc.constantFrom('east', 'west'),
  };
  const put = fc.record(
    { ...base, op: fc.constant('put' as const), spec },
    { requiredKeys: ['revision', 'seq', 'kind', 'namespace', 'name', 'prevVersion', 'op', 'spec'] },
  );
  const del = fc.record(
    { ...base, op: fc.constant('delete' as const) },
    { requiredKeys: ['revision', 'seq', 'kind', 'namespace', 'name', 'prevVersion', 'op'] },
  );
  return fc.oneof(put, del) as fc.Arbitrary<CommittedEvent>;
}

const changeSetArb: fc.Arbitrary<ChangeSet> = fc.integer({ min: 1, max: 2 ** 40 }).chain((revision) =>
  fc.record({
    revision: fc.constant(revision),
    changeId: fc.uuid(),
    cluster: fc.constantFrom('local', 'eu-west'),
    actor: fc.string({ minLength: 1 }),
    reason: fc.string({ minLength: 1 }),
    requestId: nullableString,
    idempotencyKey: nullableString,
    traceContext: fc.option(fc.constant('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'), {
      nil: null,
    }),
    restoredFromRevision: fc.option(fc.nat({ max: revision }), { nil: null }),
    metadata: spec,
    createdAt: fc.date({
      min: new Date('1970-01-01T00:00:00Z'),
      max: new Date('9999-12-31T23:59:59Z'),
      noInvalidDate: true,
    }),
    eventCount: fc.nat({ max: 10 }),
    prevHash: hex64,
    hash: hex64,
    events: fc.array(eventArb(revision), { maxLength: 6 }),
  }),
);

describe('revision codec', () => {
  it('round-trips any change set exactly', () => {
    fc.assert(
      fc.property(changeSetArb, (cs) => {
        const back = decodeRevision(encodeRevision(cs));
        expect(back).toEqual(cs);
        expect(back.createdAt).toBeInstanceOf(Date);
        expect(back.createdAt.getTime()).toBe(cs.createdAt.getTime());
        // Absent optional members stay absent (no `spec: undefined` appears).
        for (const [i, e] of back.events.entries()) {
          expect(Object.keys(e).sort()).toEqual(Object.keys(cs.events[i]!).sort());
        }
      }),
      { numRuns: 300 },
    );
  });

  it('round-trips through compression, which is used only for large bodies', () => {
    fc.assert(
      fc.property(changeSetArb, (cs) => {
        const bytes = encodeRevision(cs, { compressAboveBytes: 0 });
        expect(isCompressedRevision(bytes)).toBe(true);
        expect(decodeRevision(bytes)).toEqual(cs);
      }),
      { numRuns: 50 },
    );
  });

  it('compresses a bulk change set above the threshold and keeps small ones readable', () => {
    const base = fc.sample(changeSetArb, 1)[0]!;
    const events: CommittedEvent[] = Array.from({ length: 5000 }, (_, i) => ({
      revision: base.revision,
      seq: i + 1,
      kind: 'Workload',
      namespace: 'default',
      name: `w-${i}`,
      op: 'put',
      spec: { address: `127.0.1.${i % 250}`, node: 'node-a', labels: { app: `svc-${i % 100}` } },
      prevVersion: null,
    }));
    const big = { ...base, events, eventCount: events.length };
    const bytes = encodeRevision(big);
    expect(isCompressedRevision(bytes)).toBe(true);
    expect(bytes.length).toBeLessThan(JSON.stringify(big).length / 5);
    expect(decodeRevision(bytes)).toEqual(big);
    const small = encodeRevision({ ...base, events: [] });
    expect(small.length).toBeLessThan(COMPRESS_ABOVE_BYTES);
    expect(Buffer.from(small).toString('utf8').startsWith('{"v":1,')).toBe(true);
  });

  it('writes only ChangeSet fields, with an ISO date', () => {
    const cs = { ...fc.sample(changeSetArb, 1)[0]!, secret: 'x' } as ChangeSet;
    const wire = JSON.parse(Buffer.from(encodeRevision(cs)).toString('utf8'));
    expect(wire.secret).toBeUndefined();
    expect(wire.createdAt).toBe(cs.createdAt.toISOString());
    expect(wire.v).toBe(1);
  });

  it('rejects an invalid date on encode', () => {
    const cs = { ...fc.sample(changeSetArb, 1)[0]!, createdAt: new Date(Number.NaN) };
    expect(() => encodeRevision(cs)).toThrow(RevisionCodecError);
  });

  it.each([
    ['not json', 'not valid'],
    ['[]', 'unsupported revision format version undefined'],
    ['{"v":2}', 'unsupported revision format version 2'],
    ['{"v":1}', 'invalid revision message at revision'],
  ])('rejects %j', (text, message) => {
    expect(() => decodeRevision(Buffer.from(text))).toThrow(message);
  });

  it('names the bad field of a damaged message', () => {
    const cs = fc.sample(changeSetArb, 1)[0]!;
    const wire = JSON.parse(Buffer.from(encodeRevision(cs)).toString('utf8'));
    wire.events = [
      {
        ...cs.events[0],
        op: 'patch',
        revision: cs.revision,
        seq: 1,
        kind: 'K',
        namespace: 'n',
        name: 'x',
        prevVersion: null,
      },
    ];
    expect(() => decodeRevision(Buffer.from(JSON.stringify(wire)))).toThrow(
      'invalid revision message at events.0.op',
    );
    wire.events = [];
    wire.createdAt = 'yesterday';
    expect(() => decodeRevision(Buffer.from(JSON.stringify(wire)))).toThrow('at createdAt');
  });
  it.each([
    ['revision', 0, 'revision: must be a positive integer'],
    ['revision', 1.5, 'revision: must be a positive integer'],
    ['changeId', 7, 'changeId: must be a string'],
    ['hash', null, 'hash: must be a string'],
    ['requestId', 1, 'requestId: must be a string or null'],
    ['traceContext', {}, 'traceContext: must be a string or null'],
    ['restoredFromRevision', -1, 'restoredFromRevision: must be null or a revision'],
    ['metadata', [], 'metadata: must be a JSON object'],
    ['createdAt', '2026-11-26', 'createdAt: must be an ISO 8601 date-time with an offset'],
    ['createdAt', '2026-13-45T00:00:00Z', 'createdAt: must be an ISO 8601 date-time with an offset'],
    ['eventCount', '1', 'eventCount: must be a non-negative integer'],
  ])('names the bad header field %s = %j', (field, value, message) => {
    const cs = fc.sample(changeSetArb, 1)[0]!;
    const wire = JSON.parse(Buffer.from(encodeRevision(cs)).toString('utf8'));
    wire[field] = value;
    expect(() => decodeRevision(Buffer.from(JSON.stringify(wire)))).toThrow(
      `invalid revision message at ${message}`,
    );
  });

  it('accepts any offset and drops fields it does not know', () => {
    const cs = fc.sample(changeSetArb, 1)[0]!;
    const wire = JSON.parse(Buffer.from(encodeRevision(cs)).toString('utf8'));
    wire.createdAt = '2026-11-26T03:00:00.5+01:00';
    wire.newerField = { x: 1 };
    const back = decodeRevision(Buffer.from(JSON.stringify(wire)));
    expect(back.createdAt.toISOString()).toBe('2026-11-26T02:00:00.500Z');
    expect(back).not.toHaveProperty('newerField');
    expect(back).not.toHaveProperty('v');
  });
});

describe('revision headers', () => {
  const cs = (over: Partial<ChangeSet>): ChangeSet => ({ ...fc.sample(changeSetArb, 1)[0]!, ...over });
  const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

  it('carries revision, cluster, hash and the trace context', () => {
    const c = cs({ revision: 7, traceContext: TP, metadata: { tracestate: 'mp=1' } });
    const h = revisionHeaders('local', c);
    expect(h.get('Mesh-Revision')).toBe('7');
    expect(h.get('Mesh-Cluster')).toBe('local');
    expect(h.get('Mesh-Hash')).toBe(c.hash);
    expect(h.get('traceparent')).toBe(TP);
    expect(h.get('tracestate')).toBe('mp=1');
    expect(readRevisionHeaders(h)).toEqual({
      revision: 7,
      cluster: 'local',
      hash: c.hash,
      trace: { traceparent: TP, tracestate: 'mp=1' },
    });
  });

  it('omits trace headers without a (valid) trace context', () => {
    expect(revisionHeaders('local', cs({ traceContext: null })).has('traceparent')).toBe(false);
    expect(revisionHeaders('local', cs({ traceContext: 'junk' })).has('traceparent')).toBe(false);
    expect(changeSetTraceContext(cs({ traceContext: null }))).toBeUndefined();
  });

  it('reads missing or junk headers as undefined', () => {
    expect(readRevisionHeaders(undefined)).toEqual({
      revision: undefined,
      cluster: undefined,
      hash: undefined,
      trace: undefined,
    });
    const h = headers();
    h.set('Mesh-Revision', '12x');
    expect(readRevisionHeaders(h).revision).toBeUndefined();
  });
});
