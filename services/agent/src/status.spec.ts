import type { ApplyOutcome } from '@meshplane/dataplane';
import { decodeNodeStatus } from '@meshplane/messaging';
import type { KV } from '@nats-io/kv';
import { parseSnapshot } from './snapshot';
import { encodeStatusWithExtra, StatusReporter, type StatusReporterOptions } from './status';

const ok = (revision: number, at: number, over: Partial<ApplyOutcome> = {}): ApplyOutcome => ({
  ok: true,
  kind: 'apply',
  revision,
  ops: 3,
  batches: 2,
  durationMs: 4,
  at,
  attempt: 0,
  ...over,
});

// One node's reporter; each test names only the options it is about.
const newReporter = (over: Partial<StatusReporterOptions> = {}) =>
  new StatusReporter({ node: 'n1', cluster: 'c', agentVersion: 'v', recentApplies: 3, ...over });

describe('StatusReporter', () => {
  const reporter = () => newReporter({ now: () => 1000 });

  it('records applies with their times, bounded, and only when the revision advances', () => {
    const r = reporter();
    r.restored(4, 500);
    expect(r.current()).toMatchObject({ appliedRevision: 4, appliedAt: new Date(500), state: 'STARTING' });
    for (const rev of [5, 5, 7, 9, 12]) r.outcome(ok(rev, rev * 100), false);
    const s = r.current();
    expect(s).toMatchObject({
      appliedRevision: 12,
      appliedAt: new Date(1200),
      ops: 3,
      applyDurationMs: 4,
      state: 'READY',
    });
    expect(s.recentApplies!.map((a) => a.revision)).toEqual([7, 9, 12]);
  });

  it('applied() says what current() says of the applied revision, also after a failure', () => {
    const r = reporter();
    expect(r.applied()).toEqual({ revision: 0, durationMs: null });
    r.outcome(ok(7, 700, { durationMs: 2.5 }), false);
    r.outcome({ ...ok(8, 800), ok: false, error: 'EIO' }, false);
    const s = r.current();
    expect(r.applied()).toEqual({ revision: s.appliedRevision, durationMs: s.applyDurationMs });
    expect(r.applied()).toEqual({ revision: 7, durationMs: 2.5 });
  });

  it('keeps the receive time of a revision applied on its own', () => {
    const r = reporter();
    r.outcome(ok(5, 500), false, 480);
    r.outcome(ok(8, 800), false);
    const [five, eight] = r.current().recentApplies!;
    expect(five).toEqual({ revision: 5, appliedAt: new Date(500), durationMs: 4, receivedAt: new Date(480) });
    expect(eight).not.toHaveProperty('receivedAt');
  });

  it('a failure keeps the applied revision and names the failed one; a success clears the error', () => {
    const r = reporter();
    r.outcome(ok(3, 300), false);
    r.outcome({ ...ok(4, 400), ok: false, error: 'update mesh_services: EIO' }, false);
    expect(r.current()).toMatchObject({
      appliedRevision: 3,
      failedRevision: 4,
      lastError: 'update mesh_services: EIO',
      lastErrorAt: new Date(400),
      state: 'ERROR',
    });
    r.outcome(ok(4, 500), true);
    expect(r.current()).toMatchObject({
      appliedRevision: 4,
      lastError: null,
      failedRevision: null,
      state: 'APPLYING',
    });
  });
});

describe('StatusReporter history across restarts', () => {
  it('keeps the previous process records up to the checkpoint, in order, before new ones', () => {
    const r = newReporter({ now: () => 1000 });
    const rec = (revision: number) => ({ revision, appliedAt: new Date(revision * 10), durationMs: 1 });
    r.restored(8, 80);
    // 9 is above what the maps hold (not kept); duplicates and disorder are dropped.
    expect(r.restoreHistory([rec(5), rec(2), rec(8), rec(8), rec(9), rec(6)], 8)).toBe(3);
    expect(r.current().recentApplies).toEqual([rec(5), rec(6), rec(8)]);
    r.outcome(ok(10, 100), false);
    expect(r.current().recentApplies!.map((a) => a.revision)).toEqual([6, 8, 10]);
    // Once this process has applied something, an old history is not merged in.
    expect(r.restoreHistory([rec(1)], 10)).toBe(0);
  });
});

describe('StatusReporter writes', () => {
  // A KV that records what was put (unit test: no I/O); time is jest's fake clock.
  const recordingKv = () => {
    const puts: Array<{ key: string; status: ReturnType<typeof decodeNodeStatus>; extra: unknown }> = [];
    const kv = {
      put: async (key: string, value: Uint8Array) => {
        puts.push({
          key,
          status: decodeNodeStatus(value),
          extra: JSON.parse(Buffer.from(value).toString('utf8')).dataplane,
        });
        return puts.length;
      },
    };
    return { puts, kv: kv as unknown as KV };
  };
  const flush = async () => {
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };

  beforeEach(() => jest.useFakeTimers({ now: 10_000 }));
  afterEach(() => jest.useRealTimers());

  it('coalesces writes after applies: at most one per interval, the last change always written', async () => {
    const { puts, kv } = recordingKv();
    const r = newReporter({
      recentApplies: 10,
      minIntervalMs: 250,
      random: () => 0,
      extra: () => ({ dataplane: { repairs: 0 } }),
    });
    r.attach(kv);
    // Idle: the first change is written on the next turn of the event loop.
    r.outcome(ok(1, 10_000), false);
    r.changed();
    expect(puts).toHaveLength(0);
    jest.advanceTimersByTime(0);
    await flush();
    expect(puts.map((p) => p.status.appliedRevision)).toEqual([1]);
    expect(puts[0]!.extra).toEqual({ repairs: 0 });
    // Busy: three applies within the interval ride in one write at its end, with their own times.
    for (const rev of [2, 3, 4]) {
      jest.advanceTimersByTime(50);
      r.outcome(ok(rev, Date.now()), false);
      r.changed();
    }
    await flush();
    expect(puts).toHaveLength(1);
    jest.advanceTimersByTime(100);
    await flush();
    expect(puts).toHaveLength(2);
    const last = puts[1]!.status;
    expect(last.appliedRevision).toBe(4);
    expect(last.recentApplies!.map((a) => [a.revision, a.appliedAt.getTime()])).toEqual([
      [1, 10_000],
      [2, 10_050],
      [3, 10_100],
      [4, 10_150],
    ]);
    // Nothing changed since: no write until the heartbeat.
    jest.advanceTimersByTime(1_000);
    await flush();
    expect(puts).toHaveLength(2);
  });

  it('spreads a coalesced write over up to a fifth of the interval past its end, never before', async () => {
    const { puts, kv } = recordingKv();
    const r = newReporter({ recentApplies: 10, minIntervalMs: 250, random: () => 0.999 });
    r.attach(kv);
    await r.publish(); // at 10_000
    r.outcome(ok(1, Date.now()), false);
    r.changed(); // due at 10_250, spread by floor(0.999 * 50) = 49 ms
    jest.advanceTimersByTime(298);
    await flush();
    expect(puts).toHaveLength(1);
    jest.advanceTimersByTime(1);
    await flush();
    expect(puts.map((p) => p.status.appliedRevision)).toEqual([0, 1]);
    // Idle long enough: the next change is written on the next turn, with no spread.
    jest.advanceTimersByTime(1_000);
    r.outcome(ok(2, Date.now()), false);
    r.changed();
    jest.advanceTimersByTime(0);
    await flush();
    expect(puts.map((p) => p.status.appliedRevision)).toEqual([0, 1, 2]);
  });

  it('close() writes at once, replacing a scheduled write, and later changes write nothing', async () => {
    const { puts, kv } = recordingKv();
    const r = newReporter({ recentApplies: 10, minIntervalMs: 250 });
    r.attach(kv);
    await r.publish();
    r.outcome(ok(7, Date.now()), false);
    r.changed();
    r.setState('STOPPING');
    await r.close();
    expect(puts.map((p) => [p.status.appliedRevision, p.status.state])).toEqual([
      [0, 'STARTING'],
      [7, 'STOPPING'],
    ]);
    r.changed();
    jest.advanceTimersByTime(1_000);
    await flush();
    expect(puts).toHaveLength(2);
  });

  it('with interval 0 every change is written', async () => {
    const { puts, kv } = recordingKv();
    const r = newReporter({ recentApplies: 10, minIntervalMs: 0 });
    r.attach(kv);
    for (const rev of [1, 2, 3]) {
      r.outcome(ok(rev, Date.now()), false);
      r.changed();
      jest.advanceTimersByTime(0);
      await flush();
    }
    expect(puts.map((p) => p.status.appliedRevision)).toEqual([1, 2, 3]);
  });
});

describe('encodeStatusWithExtra', () => {
  it('adds the data plane facts beside the NodeStatus fields; readers still decode the status', () => {
    const r = newReporter({ now: () => 1000 });
    r.outcome(ok(3, 300), false);
    const status = r.current();
    const bytes = encodeStatusWithExtra(status, {
      dataplane: { backend: 'bpf', repairs: 2 },
      node: 'not-this',
    });
    const wire = JSON.parse(Buffer.from(bytes).toString('utf8'));
    expect(wire.dataplane).toEqual({ backend: 'bpf', repairs: 2 });
    expect(wire.node).toBe('n1'); // extra fields never override the status
    // Readers keep `dataplane` (GET /v1/nodes shows it) and drop other extras.
    expect(decodeNodeStatus(bytes)).toEqual({ ...status, dataplane: { backend: 'bpf', repairs: 2 } });
  });
});

describe('parseSnapshot', () => {
  it('turns the API body into a state at its revision', () => {
    const snap = parseSnapshot({
      cluster: 'c',
      revision: 9,
      hash: 'x',
      resources: [
        { kind: 'Service', namespace: 'default', name: 'web', spec: { vip: '127.100.0.1' }, version: 9 },
      ],
    });
    expect(snap.revision).toBe(9);
    expect(snap.state.resources.get('Service/default/web')?.spec).toEqual({ vip: '127.100.0.1' });
  });

  it('rejects a body that is not a snapshot', () => {
    expect(() => parseSnapshot({ revision: -1, resources: [] })).toThrow(/invalid snapshot at revision/);
  });
});
