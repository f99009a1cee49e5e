import type { NodeStatus } from '@meshplane/messaging';
import fc from 'fast-check';
import {
  appliedAtOf,
  deriveNodeState,
  firstUnappliedRevision,
  NODE_STATES,
  propagationOf,
} from './node-state';

const T0 = Date.parse('2024-05-01T12:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms);

function status(over: Partial<NodeStatus> = {}): NodeStatus {
  return {
    node: 'node-a',
    cluster: 'c',
    appliedRevision: 5,
    appliedAt: at(-1_000),
    lastError: null,
    applyDurationMs: 3,
    ops: 12,
    agentVersion: '0.1.0',
    heartbeatAt: at(-2_000),
    ...over,
  };
}

const derive = (s: NodeStatus, head: number, commits: [number, number][] = [], offlineAfterMs = 15_000) =>
  deriveNodeState({
    status: s,
    headRevision: head,
    now: at(0),
    offlineAfterMs,
    committedAt: new Map(commits.map(([r, ms]) => [r, at(ms)])),
  });

describe('deriveNodeState', () => {
  test('SYNCED at the head: no lag, no message', () => {
    const v = derive(status({ state: 'READY' }), 5);
    expect(v).toMatchObject({
      node: 'node-a',
      state: 'SYNCED',
      appliedRevision: 5,
      lagRevisions: 0,
      lagSeconds: 0,
      message: null,
      heartbeatAgeSeconds: 2,
      agentState: 'READY',
      failedRevision: null,
      lastErrorAt: null,
      ops: 12,
      applyDurationMs: 3,
      agentVersion: '0.1.0',
    });
  });

  test("passes the agent's dataplane block through, null from agents that do not report one", () => {
    const dataplane = { backend: 'bpf', pinDir: '/sys/fs/bpf/meshplane/node-a', repairs: 2 };
    expect(derive(status({ dataplane }), 5).dataplane).toEqual(dataplane);
    expect(derive(status(), 5).dataplane).toBeNull();
  });

  test('STALE behind the head: lag in revisions and in seconds since the first missing commit', () => {
    const v = derive(status({ appliedRevision: 2 }), 5, [[3, -7_250]]);
    expect(v).toMatchObject({ state: 'STALE', lagRevisions: 3, lagSeconds: 7.25 });
    expect(v.message).toBe('3 revisions behind the head');
    expect(derive(status({ appliedRevision: 4 }), 5, [[5, -1]]).message).toBe('1 revision behind the head');
  });

  test('lagSeconds is null when the commit time is not known, and never negative', () => {
    expect(derive(status({ appliedRevision: 2 }), 5).lagSeconds).toBeNull();
    expect(derive(status({ appliedRevision: 2 }), 5, [[3, 5_000]]).lagSeconds).toBe(0);
  });

  test('ERROR when behind with an error: names the failed revision', () => {
    const s = status({
      appliedRevision: 3,
      lastError: 'map full',
      failedRevision: 4,
      lastErrorAt: at(-500),
    });
    const v = derive(s, 5, [[4, -10_000]]);
    expect(v).toMatchObject({
      state: 'ERROR',
      lastError: 'map full',
      failedRevision: 4,
      lastErrorAt: at(-500),
      lagRevisions: 2,
      lagSeconds: 10,
    });
    expect(v.message).toBe('revision 4 failed to apply: map full');
    // Without failedRevision, the first missing revision is the one that failed.
    expect(derive(status({ appliedRevision: 3, lastError: 'x' }), 5).message).toBe(
      'revision 4 failed to apply: x',
    );
  });

  test('an old error on a node at the head does not make it ERROR', () => {
    expect(derive(status({ lastError: 'transient' }), 5).state).toBe('SYNCED');
  });

  test('ERROR when the node reports a revision beyond the head (another log)', () => {
    const v = derive(status({ appliedRevision: 9 }), 5);
    expect(v).toMatchObject({ state: 'ERROR', lagRevisions: -4, lagSeconds: 0 });
    expect(v.message).toContain('beyond the head 5');
  });

  test('OFFLINE once the heartbeat is older than the timeout, whatever else it says', () => {
    const old = { heartbeatAt: at(-15_001) };
    expect(derive(status(old), 5).state).toBe('OFFLINE');
    expect(derive(status({ ...old, appliedRevision: 2, lastError: 'x' }), 5, [[3, -60_000]])).toMatchObject({
      state: 'OFFLINE',
      lagRevisions: 3,
      lagSeconds: 60,
      message: 'no heartbeat for 15.001s (offline after 15s)',
    });
    // Exactly at the timeout is still online; a heartbeat from the future (skew) is fresh.
    expect(derive(status({ heartbeatAt: at(-15_000) }), 5).state).toBe('SYNCED');
    expect(derive(status({ heartbeatAt: at(3_000) }), 5)).toMatchObject({
      state: 'SYNCED',
      heartbeatAgeSeconds: 0,
    });
    expect(derive(status({ heartbeatAt: at(-600) }), 5, [], 500).state).toBe('OFFLINE');
  });

  test('firstUnappliedRevision', () => {
    expect(firstUnappliedRevision(status({ appliedRevision: 2 }), 5)).toBe(3);
    expect(firstUnappliedRevision(status({ appliedRevision: 5 }), 5)).toBeUndefined();
    expect(firstUnappliedRevision(status({ appliedRevision: 7 }), 5)).toBeUndefined();
  });

  test('property: exactly one state, consistent with the facts', () => {
    fc.assert(
      fc.property(
        fc.nat(1000),
        fc.nat(1000),
        fc.option(fc.string(), { nil: null }),
        fc.integer({ min: -60_000, max: 60_000 }),
        (applied, head, lastError, hbOffset) => {
          const v = derive(status({ appliedRevision: applied, lastError, heartbeatAt: at(hbOffset) }), head, [
            [applied + 1, -1_000],
          ]);
          expect(NODE_STATES).toContain(v.state);
          expect(v.lagRevisions).toBe(head - applied);
          if (-hbOffset > 15_000) expect(v.state).toBe('OFFLINE');
          else if (applied === head) expect(v.state).toBe('SYNCED');
          else if (applied > head || lastError !== null) expect(v.state).toBe('ERROR');
          else expect(v.state).toBe('STALE');
          expect(v.lagSeconds).toBe(applied < head ? 1 : 0);
          expect(v.message === null).toBe(v.state === 'SYNCED');
        },
      ),
    );
  });
});

describe('appliedAtOf and propagationOf', () => {
  const history = (...entries: [number, number][]) =>
    entries.map(([revision, ms]) => ({ revision, appliedAt: at(ms), durationMs: 1 }));
  const prop = (s: NodeStatus, revision: number, committedMs = -10_000) =>
    propagationOf({ status: s, revision, committedAt: at(committedMs), now: at(0), offlineAfterMs: 15_000 });

  test('the first entry at or after the revision, when the entry before proves it was below', () => {
    const s = status({ appliedRevision: 9, recentApplies: history([2, -9_000], [6, -8_000], [9, -7_000]) });
    expect(appliedAtOf(s, 6)).toEqual({ applied: true, known: true, at: at(-8_000), receivedAt: null });
    // Coalesced: 3..6 were applied together by the apply that reached 6.
    expect(appliedAtOf(s, 4)).toEqual({ applied: true, known: true, at: at(-8_000), receivedAt: null });
    expect(appliedAtOf(s, 7)).toEqual({ applied: true, known: true, at: at(-7_000), receivedAt: null });
    // The oldest entry proves its own revision only.
    expect(appliedAtOf(s, 2)).toEqual({ applied: true, known: true, at: at(-9_000), receivedAt: null });
    expect(appliedAtOf(s, 1)).toEqual({ applied: true, known: false });
    expect(appliedAtOf(s, 10)).toEqual({ applied: false });
  });

  test('history in any order; without history only appliedRevision itself is known', () => {
    const s = status({ appliedRevision: 9, recentApplies: history([9, -7_000], [6, -8_000]) });
    expect(appliedAtOf(s, 7)).toEqual({ applied: true, known: true, at: at(-7_000), receivedAt: null });
    const bare = status({ appliedRevision: 9, appliedAt: at(-4_000) });
    expect(appliedAtOf(bare, 9)).toEqual({ applied: true, known: true, at: at(-4_000), receivedAt: null });
    expect(appliedAtOf(bare, 8)).toEqual({ applied: true, known: false });
  });

  test('APPLIED with latency = applied - committed', () => {
    const s = status({ appliedRevision: 9, recentApplies: history([8, -9_000], [9, -7_000]) });
    expect(prop(s, 9, -7_120)).toEqual({
      node: 'node-a',
      state: 'APPLIED',
      appliedRevision: 9,
      appliedAt: at(-7_000),
      latencyMs: 120,
      receivedAt: null,
      detail: null,
    });
  });

  test('receivedAt only when the apply was for that revision alone', () => {
    const s = status({
      appliedRevision: 9,
      recentApplies: [
        { revision: 6, appliedAt: at(-8_000), durationMs: 1, receivedAt: at(-8_010) },
        { revision: 9, appliedAt: at(-7_000), durationMs: 1, receivedAt: at(-7_004) },
      ],
    });
    expect(prop(s, 9, -7_120)).toMatchObject({ state: 'APPLIED', latencyMs: 120, receivedAt: at(-7_004) });
    // 7 and 8 were coalesced into the apply that reached 9: 9's receive time is not theirs.
    expect(prop(s, 8)).toMatchObject({ state: 'APPLIED', appliedAt: at(-7_000), receivedAt: null });
  });

  test('APPLIED (time unknown) when the history no longer reaches the revision', () => {
    const s = status({ appliedRevision: 9, recentApplies: history([8, -9_000], [9, -7_000]) });
    expect(prop(s, 3)).toMatchObject({ state: 'APPLIED', appliedAt: null, latencyMs: null });
    expect(prop(s, 3).detail).toMatch(/^applied \(time unknown\)/);
  });

  test('an applied revision stays APPLIED even when the node is offline now', () => {
    const s = status({ appliedRevision: 9, appliedAt: at(-60_000), heartbeatAt: at(-60_000) });
    expect(prop(s, 9, -61_000)).toMatchObject({ state: 'APPLIED', latencyMs: 1_000 });
  });

  test('not applied: OFFLINE, then ERROR, then PENDING', () => {
    expect(prop(status({ appliedRevision: 4, heartbeatAt: at(-20_000), lastError: 'x' }), 5)).toMatchObject({
      state: 'OFFLINE',
      appliedAt: null,
      latencyMs: null,
      detail: 'at revision 4; no heartbeat for 20s',
    });
    expect(prop(status({ appliedRevision: 4, lastError: 'map full', failedRevision: 5 }), 6)).toMatchObject({
      state: 'ERROR',
      detail: 'revision 5 failed to apply: map full',
    });
    expect(prop(status({ appliedRevision: 4 }), 6)).toMatchObject({
      state: 'PENDING',
      appliedRevision: 4,
      detail: 'at revision 4',
    });
  });
});
