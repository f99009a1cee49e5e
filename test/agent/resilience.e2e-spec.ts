/*
 * An agent on a private NATS server that restarts under it (graceful, then kill -9): with its own
 * connection, it must resume from where it stopped without operator action and converge on
 * every revision committed around the restarts.
 */
import type { Change } from '@meshplane/domain';
import { publishRevision } from '@meshplane/messaging';
import { service, workload } from '../../libs/dataplane/src/test-fixtures';
import { openStoreFixture, type StoreFixture } from '../event-store/fixture';
import { PrivateNats, waitFor } from '../harness';
import { type ClusterFixture, clusterFixture, expectMapsMatch, type RunningAgent, runAgent } from './fixture';

let nats: PrivateNats;
let f: ClusterFixture;
let db: StoreFixture;
let agent: RunningAgent;
const lines: Array<{ level: string; msg: string; fields?: Record<string, unknown> }> = [];
const recording = {
  info: (msg: string, fields?: Record<string, unknown>) => lines.push({ level: 'info', msg, fields }),
  warn: (msg: string, fields?: Record<string, unknown>) => lines.push({ level: 'warn', msg, fields }),
  error: (msg: string, fields?: Record<string, unknown>) => lines.push({ level: 'error', msg, fields }),
};
const resumedAfterReconnect = () =>
  lines.filter((l) => l.msg === 'nats reconnected; resuming the revision consumer').length;

/** Appends and publishes, retrying the publish while the server is down (as the relay does). */
async function commit(changes: Change[]): Promise<number> {
  const r = await db.store.append(changes, { actor: 'agent-e2e', reason: 'nats restart' });
  if (r.status !== 'appended') throw new Error(r.status);
  await waitFor(() => publishRevision(f.js, f.cluster, r.changeSet).then(() => true), {
    timeoutMs: 30_000,
    intervalMs: 200,
    what: `publish of revision ${r.changeSet.revision}`,
  });
  return r.changeSet.revision;
}

const add = (i: number) => [
  service(`s${i}`, `127.100.5.${i}`),
  workload(`s${i}-1`, `127.0.1.${150 + i}`, 'r1'),
];

beforeAll(async () => {
  nats = await PrivateNats.start();
  f = await clusterFixture('agentnats', undefined, nats.url);
  db = await openStoreFixture('agent_nats', { cluster: f.cluster });
  // Its own connection (no `nc`): the agent has to survive the restarts by itself.
  agent = await runAgent(f, 'r1', { nc: undefined, log: recording });
});

afterAll(async () => {
  await agent?.handle.stop().catch(() => undefined);
  await db?.close();
  await f?.close().catch(() => undefined);
  await nats?.destroy();
});

describe('agent across NATS restarts', () => {
  it('resumes after a graceful restart and after kill -9, converging on every revision', async () => {
    await commit(add(1));
    let head = await commit(add(2));
    await agent.handle.waitForRevision(head);

    await nats.restart();
    head = await commit(add(3));
    await agent.handle.waitForRevision(head, 30_000);
    // It resumed because it saw the reconnect (a new consumer at once), not after the old
    // consumer's missed heartbeats or pull expiry.
    expect(resumedAfterReconnect()).toBeGreaterThanOrEqual(1);
    await expectMapsMatch(agent.backend, await db.store.currentState(), 'r1');

    await nats.kill9();
    await nats.start();
    for (let i = 4; i <= 6; i++) head = await commit(add(i));
    await agent.handle.waitForRevision(head, 30_000);
    await expectMapsMatch(agent.backend, await db.store.currentState(), 'r1');
    expect(resumedAfterReconnect()).toBeGreaterThanOrEqual(2);
    expect(lines.filter((l) => l.level === 'error')).toEqual([]);
    const revs = agent.handle.status().recentApplies!.map((r) => r.revision);
    expect([...revs].sort((a, b) => a - b)).toEqual(revs);
  });
});
