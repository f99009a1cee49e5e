import type { ApplyOutcome } from '@meshplane/dataplane';
import { decodeNodeStatus } from '@meshplane/messaging';
import { parseSnapshot } from './snapshot';
import { encodeStatusWithExtra, StatusReporter } from './status';

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

describe('StatusReporter', () => {
  const reporter = () =>
    new StatusReporter({ node: 'n1', cluster: 'c', agentVersion: 'v', recentApplies: 3, now: () => 1000 });

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

describe('encodeStatusWithExtra', () => {
  it('adds the data plane facts beside the NodeStatus fields; readers still decode the status', () => {
    const r = new StatusReporter({
      node: 'n1',
      cluster: 'c',
      agentVersion: 'v',
      recentApplies: 3,
      now: () => 1000,
    });
    r.outcome(ok(3, 300), false);
    const status = r.current();
    const bytes = encodeStatusWithExtra(status, {
      dataplane: { backend: 'bpf', repairs: 2 },
      node: 'not-this',
    });
    const wire = JSON.parse(Buffer.from(bytes).toString('utf8'));
    expect(wire.dataplane).toEqual({ backend: 'bpf', repairs: 2 });
    expect(wire.node).toBe('n1'); // extra fields never override the status
    expect(decodeNodeStatus(bytes)).toEqual(status);
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
