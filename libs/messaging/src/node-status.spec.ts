import fc from 'fast-check';
import {
  AppliedHistory,
  type AppliedRecord,
  decodeNodeStatus,
  encodeNodeStatus,
  type NodeStatus,
  NodeStatusCodecError,
} from './node-status';

const baseStatus = (): NodeStatus => ({
  node: 'n1',
  cluster: 'local',
  appliedRevision: 7,
  appliedAt: new Date(7_000),
  lastError: null,
  applyDurationMs: 0.7,
  ops: 3,
  agentVersion: '0.1.0',
  heartbeatAt: new Date(8_000),
  state: 'READY',
});

const date = fc.date({
  min: new Date('2000-01-01T00:00:00Z'),
  max: new Date('2100-01-01T00:00:00Z'),
  noInvalidDate: true,
});

const statusArb: fc.Arbitrary<NodeStatus> = fc.record(
  {
    node: fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/),
    cluster: fc.constantFrom('local', 'east'),
    appliedRevision: fc.nat(),
    appliedAt: fc.option(date, { nil: null }),
    lastError: fc.option(fc.string(), { nil: null }),
    applyDurationMs: fc.option(fc.double({ min: 0, max: 1e6, noNaN: true }), { nil: null }),
    ops: fc.nat(),
    agentVersion: fc.constantFrom('0.1.0', '1.2.3-dev'),
    heartbeatAt: date,
    state: fc.constantFrom('STARTING', 'BOOTSTRAPPING', 'APPLYING', 'READY', 'ERROR', 'STOPPING' as const),
    failedRevision: fc.option(fc.nat(), { nil: null }),
    lastErrorAt: fc.option(date, { nil: null }),
    recentApplies: fc.array(
      fc.record(
        { revision: fc.nat(), appliedAt: date, durationMs: fc.nat(), receivedAt: date },
        { requiredKeys: ['revision', 'appliedAt', 'durationMs'] },
      ),
      { maxLength: 5 },
    ),
  },
  {
    requiredKeys: [
      'node',
      'cluster',
      'appliedRevision',
      'appliedAt',
      'lastError',
      'applyDurationMs',
      'ops',
      'agentVersion',
      'heartbeatAt',
    ],
  },
);

describe('node status codec', () => {
  it('round-trips exactly, optional fields included or absent', () => {
    fc.assert(
      fc.property(statusArb, (s) => {
        const back = decodeNodeStatus(encodeNodeStatus(s));
        expect(back).toEqual(s);
        expect(Object.keys(back).sort()).toEqual(Object.keys(s).sort());
      }),
      { numRuns: 300 },
    );
  });

  it('rejects wrong versions and bad fields with the field path', () => {
    const s = fc.sample(statusArb, 1)[0]!;
    const wire = JSON.parse(Buffer.from(encodeNodeStatus(s)).toString('utf8'));
    expect(() => decodeNodeStatus(Buffer.from(JSON.stringify({ ...wire, v: 2 })))).toThrow('at v');
    expect(() => decodeNodeStatus(Buffer.from(JSON.stringify({ ...wire, appliedRevision: -1 })))).toThrow(
      'at appliedRevision',
    );
    expect(() => decodeNodeStatus(Buffer.from(JSON.stringify({ ...wire, heartbeatAt: 'now' })))).toThrow(
      'at heartbeatAt',
    );
    expect(() => decodeNodeStatus(Buffer.from('{'))).toThrow(NodeStatusCodecError);
  });

  it('ignores fields a newer agent adds', () => {
    const s = fc.sample(statusArb, 1)[0]!;
    const wire = JSON.parse(Buffer.from(encodeNodeStatus(s)).toString('utf8'));
    expect(decodeNodeStatus(Buffer.from(JSON.stringify({ ...wire, future: 1 })))).toEqual(s);
  });

  it("keeps the agent's dataplane block written as an extra field", () => {
    const s = fc.sample(statusArb, 1)[0]!;
    const dataplane = { backend: 'bpf', pinDir: '/sys/fs/bpf/meshplane/n1', repairs: 3 };
    expect(decodeNodeStatus(encodeNodeStatus(s, { dataplane }))).toEqual({ ...s, dataplane });
    expect(() =>
      decodeNodeStatus(
        Buffer.from(
          JSON.stringify({ ...JSON.parse(Buffer.from(encodeNodeStatus(s)).toString('utf8')), dataplane: 7 }),
        ),
      ),
    ).toThrow('at dataplane');
  });

  it('re-encodes a history record whose time changed, and extra fields never replace the history', () => {
    const s = fc.sample(statusArb, 1)[0]!;
    const rec = { revision: 7, appliedAt: new Date('2026-01-01T00:00:00Z'), durationMs: 1 };
    const status = { ...s, recentApplies: [rec] };
    expect(decodeNodeStatus(encodeNodeStatus(status)).recentApplies).toEqual([rec]);
    rec.appliedAt = new Date('2026-01-02T00:00:00Z');
    const out = decodeNodeStatus(encodeNodeStatus(status, { recentApplies: [] }));
    expect(out.recentApplies).toEqual([{ ...rec }]);
  });

  it('writes the history compactly: [revision, appliedAt ms, durationMs, appliedAt - receivedAt]', () => {
    const recs: AppliedRecord[] = [
      { revision: 9, appliedAt: new Date(1_795_000_000_123), durationMs: 2 },
      {
        revision: 10,
        appliedAt: new Date(1_795_000_000_500),
        durationMs: 0.5,
        receivedAt: new Date(1_795_000_000_497),
      },
    ];
    const wire = JSON.parse(
      Buffer.from(encodeNodeStatus({ ...baseStatus(), recentApplies: recs })).toString(),
    );
    expect(wire.v).toBe(1);
    expect(wire.recentApplies).toBeUndefined();
    expect(wire.applies).toEqual([
      [9, 1_795_000_000_123, 2],
      [10, 1_795_000_000_500, 0.5, 3],
    ]);
    // 64 records, as an agent keeps them: about a quarter of the old objects with ISO dates.
    const many = Array.from({ length: 64 }, (_, i) => ({
      revision: 100_000 + i,
      appliedAt: new Date(1_795_000_000_000 + i * 37),
      durationMs: 3,
      receivedAt: new Date(1_795_000_000_000 + i * 37 - 2),
    }));
    expect(encodeNodeStatus({ ...baseStatus(), recentApplies: many }).byteLength).toBeLessThan(2_200);
  });

  it('still reads the history as older agents wrote it (objects with ISO dates)', () => {
    const old = {
      v: 1,
      ...JSON.parse(Buffer.from(encodeNodeStatus(baseStatus())).toString()),
      recentApplies: [
        { revision: 5, appliedAt: '2026-11-26T07:00:00.000Z', durationMs: 1 },
        {
          revision: 6,
          appliedAt: '2026-11-26T07:00:01.000Z',
          durationMs: 2,
          receivedAt: '2026-11-26T07:00:00.990Z',
        },
      ],
    };
    expect(decodeNodeStatus(Buffer.from(JSON.stringify(old))).recentApplies).toEqual([
      { revision: 5, appliedAt: new Date('2026-11-26T07:00:00.000Z'), durationMs: 1 },
      {
        revision: 6,
        appliedAt: new Date('2026-11-26T07:00:01.000Z'),
        durationMs: 2,
        receivedAt: new Date('2026-11-26T07:00:00.990Z'),
      },
    ]);
  });

  it('rejects a malformed compact record with its path', () => {
    const wire = JSON.parse(Buffer.from(encodeNodeStatus(baseStatus())).toString());
    const bad = (applies: unknown) => () =>
      decodeNodeStatus(Buffer.from(JSON.stringify({ ...wire, applies })));
    expect(bad([[1, 2]])).toThrow('at applies.0');
    expect(bad([[1, 2, 3, 4, 5]])).toThrow('at applies.0');
    expect(bad([[-1, 2, 3]])).toThrow('at applies.0');
    expect(bad([[1, 'x', 3]])).toThrow('at applies.0');
    expect(bad([[1, 9e15, 3]])).toThrow('at applies.0');
    expect(bad([[1, 8e15, 3, -1e15]])).toThrow('at applies.0'); // received after the Date range
  });

  it('refuses to encode an invalid date', () => {
    const s = fc.sample(statusArb, 1)[0]!;
    expect(() => encodeNodeStatus({ ...s, heartbeatAt: new Date('x') })).toThrow(/heartbeatAt/);
  });
});

describe('AppliedHistory', () => {
  const rec = (revision: number, received = false): AppliedRecord => ({
    revision,
    appliedAt: new Date(1_000 * revision),
    durationMs: revision / 10,
    ...(received ? { receivedAt: new Date(1_000 * revision - 5) } : {}),
  });

  it('keeps the newest `limit` records, and its text is what encoding the records gives', () => {
    const h = new AppliedHistory(3);
    expect(h.json()).toBe('[]');
    for (let r = 1; r <= 7; r++) {
      h.push(rec(r, r % 2 === 0));
      const kept = h.records();
      expect(kept.map((x) => x.revision)).toEqual(
        Array.from({ length: Math.min(r, 3) }, (_, i) => Math.max(1, r - 2) + i),
      );
      const status = { ...baseStatus(), recentApplies: kept };
      // The spliced text and the records encoded one by one give the same value.
      expect(Buffer.from(encodeNodeStatus(status, undefined, h.json())).toString()).toBe(
        Buffer.from(encodeNodeStatus(status)).toString(),
      );
      expect(decodeNodeStatus(encodeNodeStatus(status, undefined, h.json())).recentApplies).toEqual(kept);
    }
  });

  it('joins the text only when asked, with every push since the last ask in it', () => {
    const h = new AppliedHistory(3);
    h.push(rec(1));
    expect(JSON.parse(h.json())).toHaveLength(1);
    for (let r = 2; r <= 6; r++) h.push(rec(r, true)); // several applies per status write
    const status = { ...baseStatus(), recentApplies: h.records() };
    expect(h.json()).toBe(
      JSON.stringify(JSON.parse(Buffer.from(encodeNodeStatus(status)).toString()).applies),
    );
    expect(h.json()).toBe(h.json()); // asked twice: the same text
  });

  it('refuses a record with an invalid date and stays as it was', () => {
    const h = new AppliedHistory(2);
    h.push(rec(1));
    expect(() => h.push({ revision: 2, appliedAt: new Date(Number.NaN), durationMs: 1 })).toThrow(
      NodeStatusCodecError,
    );
    expect(h.records().map((x) => x.revision)).toEqual([1]);
    expect(JSON.parse(h.json())).toHaveLength(1);
  });

  it('pushMs (what an agent calls per apply) keeps the same records and text as push', () => {
    const a = new AppliedHistory(4);
    const b = new AppliedHistory(4);
    for (let r = 1; r <= 9; r++) {
      const x = rec(r, r % 3 === 0);
      a.push(x);
      b.pushMs(x.revision, x.appliedAt.getTime(), x.durationMs, x.receivedAt?.getTime());
      expect(b.records()).toEqual(a.records());
      expect(b.json()).toBe(a.json());
    }
    expect(() => b.pushMs(10, Number.NaN, 1)).toThrow(NodeStatusCodecError);
    expect(() => b.pushMs(10, 1_000, 1, 9e15)).toThrow('recentApplies.receivedAt is not a valid Date');
    expect(b.records().map((x) => x.revision)).toEqual([6, 7, 8, 9]);
  });

  it('refuses a limit below 1', () => {
    expect(() => new AppliedHistory(0)).toThrow(RangeError);
  });
});
