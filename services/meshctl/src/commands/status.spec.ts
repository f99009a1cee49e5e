import type { NodeItem, NodesResponse } from '../api-types';
import { run } from '../cli';
import { parseDurationMs } from '../context';
import { captureIo, fakeServer, type Handler } from '../testing/fake-io';
import { errorCell, formatAge, formatLag, nodesTable } from './status';
import { evaluate, formatDuration, timeoutText } from './wait';

function node(name: string, over: Partial<NodeItem> = {}): NodeItem {
  return {
    node: name,
    state: 'SYNCED',
    appliedRevision: 7,
    lagRevisions: 0,
    lagSeconds: 0,
    lastError: null,
    failedRevision: null,
    lastErrorAt: null,
    heartbeatAt: '2024-05-01T12:00:00.000Z',
    heartbeatAgeSeconds: 2.4,
    appliedAt: '2024-05-01T11:59:00.000Z',
    applyDurationMs: 3,
    ops: 4,
    agentVersion: '0.1.0',
    agentState: 'READY',
    message: null,
    ...over,
  };
}

const nodes = (items: NodeItem[], headRevision = 7): NodesResponse => ({
  cluster: 'local',
  headRevision,
  offlineAfterMs: 15_000,
  items,
});

const stale = node('node-b', {
  state: 'STALE',
  appliedRevision: 5,
  lagRevisions: 2,
  lagSeconds: 75.2,
  message: '2 revisions behind the head',
});
const failing = node('node-c', {
  state: 'ERROR',
  appliedRevision: 6,
  lagRevisions: 1,
  lagSeconds: 4,
  lastError: 'bpf map mesh_backends is full',
  failedRevision: 7,
  message: 'revision 7 failed to apply: bpf map mesh_backends is full',
});
const offline = node('node-d', {
  state: 'OFFLINE',
  appliedRevision: 3,
  lagRevisions: 4,
  lagSeconds: 3800,
  heartbeatAgeSeconds: 3700,
});

async function meshctl(argv: string[], handler: Handler) {
  const server = fakeServer(handler);
  const io = captureIo({ fetch: server.fetch });
  const code = await run(argv, io);
  return { code, stdout: io.stdout, stderr: io.stderr, requests: server.requests };
}

describe('formatting', () => {
  test('ages, lags and durations', () => {
    expect([0, 59.9, 60, 75, 3600, 3720, 90_000, null].map(formatAge)).toEqual([
      '0s',
      '59s',
      '1m',
      '1m15s',
      '1h',
      '1h2m',
      '1d1h',
      '',
    ]);
    expect([formatLag(node('a')), formatLag(stale), formatLag(node('x', { lagRevisions: -2 }))]).toEqual([
      '0',
      '2 (1m15s)',
      '-2',
    ]);
    expect([500, 1500, 30_000, 120_000].map(formatDuration)).toEqual(['500ms', '1.5s', '30s', '2m']);
    expect(['30', '30s', '1.5s', '500ms', '2m', '30x', '', '-1'].map(parseDurationMs)).toEqual([
      30_000,
      30_000,
      1_500,
      500,
      120_000,
      undefined,
      undefined,
      undefined,
    ]);
  });

  test('the ERROR cell: the agent error with its revision, or the reason of an ERROR without one', () => {
    expect(errorCell(failing)).toBe('rev 7: bpf map mesh_backends is full');
    const ahead = node('x', {
      state: 'ERROR',
      appliedRevision: 9,
      lagRevisions: -2,
      message: 'beyond\nhead',
    });
    expect(errorCell(ahead)).toBe('beyond\\nhead');
    expect(errorCell(node('y', { lastError: 'x'.repeat(100) }))).toHaveLength(60);
    expect(errorCell(stale)).toBe('');
  });

  test('the table', () => {
    expect(nodesTable(nodes([node('node-a'), stale, failing, offline]))).toBe(
      [
        'NODE    STATE    APPLIED  HEAD  LAG        ERROR                                 HEARTBEAT',
        'node-a  SYNCED   7        7     0                                                2s ago',
        'node-b  STALE    5        7     2 (1m15s)                                        2s ago',
        'node-c  ERROR    6        7     1 (4s)     rev 7: bpf map mesh_backends is full  2s ago',
        'node-d  OFFLINE  3        7     4 (1h3m)                                         1h1m ago',
        '',
      ].join('\n'),
    );
  });
});

describe('meshctl status', () => {
  test('table, json and yaml from GET /v1/nodes', async () => {
    const body = nodes([node('node-a'), stale]);
    const t = await meshctl(['status'], () => ({ status: 200, body }));
    expect(t.code).toBe(0);
    expect(t.requests.map((r) => `${r.method} ${r.url.pathname}`)).toEqual(['GET /v1/nodes']);
    expect(t.stdout).toBe(nodesTable(body));
    const j = await meshctl(['status', '-o', 'json'], () => ({ status: 200, body }));
    expect(JSON.parse(j.stdout)).toEqual(body);
    const y = await meshctl(['status', '-o', 'yaml'], () => ({ status: 200, body }));
    expect(y.stdout).toContain('headRevision: 7\n');
  });

  test('no nodes: says so on stderr; a 503 is an error with the server message', async () => {
    const empty = await meshctl(['status'], () => ({ status: 200, body: nodes([], 3) }));
    expect([empty.code, empty.stdout]).toEqual([0, '']);
    expect(empty.stderr).toBe('No nodes have reported status in cluster local (head revision 3).\n');
    const down = await meshctl(['status'], () => ({
      status: 503,
      body: {
        error: { code: 'UNAVAILABLE', message: 'node status is unavailable: NATS is down', details: [] },
      },
    }));
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('error: node status is unavailable: NATS is down [503 UNAVAILABLE]');
  });
});

describe('meshctl wait', () => {
  test('evaluate: OFFLINE nodes are not waited for, but one node must be online', () => {
    expect(evaluate(nodes([node('a'), offline]), 7)).toMatchObject({ done: true, lagging: [] });
    expect(evaluate(nodes([node('a'), stale, failing]), 7).lagging.map((n) => n.node)).toEqual([
      'node-b',
      'node-c',
    ]);
    expect(evaluate(nodes([node('a'), stale]), 5).done).toBe(true);
    expect(evaluate(nodes([offline]), 1).done).toBe(false);
    expect(evaluate(nodes([]), 0).done).toBe(false);
  });

  test('polls until every online node has applied the revision; exit 0', async () => {
    let polls = 0;
    const r = await meshctl(['wait', '--revision', '7', '--interval', '10ms', '--timeout', '5s'], () => {
      polls++;
      return { status: 200, body: nodes(polls < 3 ? [node('node-a'), stale] : [node('node-a'), offline]) };
    });
    expect(r.code).toBe(0);
    expect(polls).toBe(3);
    expect(r.stdout).toBe(
      'revision 7 is applied on all 1 online node (1 offline node not counted: node-d)\n',
    );
  });

  test('--revision defaults to the head; transient 503s are polled through', async () => {
    let polls = 0;
    const r = await meshctl(['wait', '--interval', '10ms'], () => {
      polls++;
      if (polls === 2) return { status: 503, body: { error: { code: 'UNAVAILABLE', message: 'nats down' } } };
      return { status: 200, body: nodes(polls < 3 ? [stale] : [node('node-b', { appliedRevision: 7 })], 7) };
    });
    expect([r.code, r.stdout]).toEqual([0, 'revision 7 is applied on all 1 online node\n']);
  });

  test('timeout: exit 1, naming the lagging nodes and the errors of ERROR ones', async () => {
    const r = await meshctl(['wait', '--revision', '7', '--interval', '20ms', '--timeout', '150ms'], () => ({
      status: 200,
      body: nodes([node('node-a'), stale, failing, offline]),
    }));
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      [
        'error: timed out after 150ms waiting for revision 7 on every online node',
        '  node-b: STALE at revision 5',
        '  node-c: ERROR at revision 6 (failed revision 7): bpf map mesh_backends is full',
        '  not counted (OFFLINE): node-d',
        '',
      ].join('\n'),
    );
  });

  test('timeout with no node online, or no answer at all', async () => {
    const none = await meshctl(
      ['wait', '--revision', '1', '--interval', '10ms', '--timeout', '50ms'],
      () => ({
        status: 200,
        body: nodes([offline]),
      }),
    );
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no node is online (1 offline: node-d)');
    expect(timeoutText(undefined, 30_000, undefined, 'cannot reach the API')).toBe(
      'error: timed out after 30s waiting for the head revision on every online node\n' +
        '  last error: cannot reach the API\n',
    );
    expect(timeoutText(3, 1000, evaluate(nodes([]), 3), undefined)).toContain('no node has reported status');
  });

  test('a revision not committed yet is noted once, then waited for', async () => {
    const r = await meshctl(['wait', '--revision', '9', '--interval', '10ms', '--timeout', '60ms'], () => ({
      status: 200,
      body: nodes([node('node-a')]),
    }));
    expect(r.code).toBe(1);
    expect(r.stderr.match(/note: revision 9 is not committed yet \(head is 7\); waiting/g)).toHaveLength(1);
  });

  test('refusals (401) end the wait at once; bad flags are usage errors', async () => {
    const r = await meshctl(['wait', '--timeout', '5s'], () => ({
      status: 401,
      body: { error: { code: 'UNAUTHENTICATED', message: 'missing bearer token' } },
    }));
    expect(r.code).toBe(1);
    expect(r.requests).toHaveLength(1);
    for (const argv of [
      ['wait', '--interval', '1ms'],
      ['wait', '--timeout', '30x'],
      ['wait', '--revision', 'head'],
    ]) {
      const u = await meshctl(argv, () => ({ status: 200, body: nodes([node('a')]) }));
      expect(u.code).toBe(2);
      expect(u.requests).toHaveLength(0);
    }
  });
});
