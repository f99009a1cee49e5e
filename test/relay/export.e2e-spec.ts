/*
 * The relay's export stream (federation): after each published revision that changed the exported
 * view, the whole view, numbered densely. The exporter folds the change sets the relay has just
 * published instead of reading them from the log again, so every view is checked here against the
 * log replayed to its revision: a revision skipped or folded twice would show in the next view.
 */

import {
  type Change,
  canonicalJson,
  DEFAULT_NAMESPACE,
  emptyState,
  evolveInPlace,
  exportedView,
} from '@meshplane/domain';
import type { EventStore } from '@meshplane/event-store';
import { decodeExport, exportStreamName } from '@meshplane/messaging';
import { loadRelayConfig, type RelayHandle, startRelay } from '../../services/relay/src';
import { createTestDatabase, type TestDatabase, waitFor } from '../harness';
import { deleteClusterNats, type NatsTools, natsTools, openLog, randomCluster } from './helpers';

const NATS_URL = process.env.NATS_URL || 'nats://127.0.0.1:4222';

const service = (name: string, vip: string): Change => ({
  op: 'put',
  kind: 'Service',
  namespace: DEFAULT_NAMESPACE,
  name,
  spec: { vip, ports: [{ port: 80, protocol: 'TCP' }], selector: { app: name }, export: true },
});

const workload = (name: string, app: string, n: number): Change => ({
  op: 'put',
  kind: 'Workload',
  namespace: DEFAULT_NAMESPACE,
  name,
  spec: { address: `127.0.1.${n}`, node: 'node-a', labels: { app }, identity: app },
});

const remove = (name: string): Change => ({
  op: 'delete',
  kind: 'Workload',
  namespace: DEFAULT_NAMESPACE,
  name,
});

describe('relay export stream (shared Postgres and NATS, in-process)', () => {
  const cluster = randomCluster('rx');
  let db: TestDatabase;
  let store: EventStore;
  let nats: NatsTools;
  let relay: RelayHandle | undefined;

  beforeAll(async () => {
    db = await createTestDatabase('relay_export');
    store = await openLog(db.url, cluster);
    nats = await natsTools(NATS_URL);
    relay = await startRelay(
      loadRelayConfig({ MESH_CLUSTER: cluster, DATABASE_URL: db.url, NATS_URL, MESH_LOG_LEVEL: 'error' }),
    );
  });

  afterAll(async () => {
    await relay?.stop();
    await nats?.jsm.streams.delete(exportStreamName(cluster)).catch(() => undefined);
    await deleteClusterNats(nats.jsm, cluster);
    await nats?.close();
    await store?.close();
    await db?.drop();
  });

  const append = async (changes: Change[]) => {
    const r = await store.append(changes, { actor: 'export-test', reason: 'export test' });
    if (r.status !== 'appended') throw new Error(`append: ${r.status}`);
    return r.changeSet.revision;
  };

  it('publishes the view after every revision that changed it, each the log replayed to that revision', async () => {
    const steps: Change[][] = [
      [service('web', '127.100.8.1')],
      [workload('web-1', 'web', 11)],
      [workload('other-1', 'other', 12)], // selected by no exported service: no new view
      [workload('web-2', 'web', 13)],
      [workload('web-1', 'web', 14)], // moved: a new view
      [remove('web-2')],
      [service('api', '127.100.8.2')],
      [workload('api-1', 'api', 15), workload('web-3', 'web', 16)],
    ];
    // One at a time, each published before the next (the relay hands one change set over at a
    // time), then a burst committed at once (several per catch-up).
    for (const changes of steps.slice(0, 5)) {
      const revision = await append(changes);
      await waitFor(() => relay!.metrics.lastPublishedRevision >= revision, { what: `revision ${revision}` });
    }
    let head = 0;
    for (const changes of steps.slice(5)) head = await append(changes);

    // The views the log says: after each revision whose view differs from the one before.
    const expected: Array<{ revision: number; view: string }> = [];
    const state = emptyState();
    let last = '[]';
    for await (const cs of store.readRevisions(1, { to: head })) {
      for (const e of cs.events) evolveInPlace(state, e);
      const view = canonicalJson(exportedView(state, cluster));
      if (view !== last) expected.push({ revision: cs.revision, view });
      last = view;
    }
    expect(expected.length).toBe(7); // other-1 changed nothing

    const stream = exportStreamName(cluster);
    await waitFor(
      async () =>
        (await nats.jsm.streams.info(stream).catch(() => undefined))?.state.last_seq === expected.length,
      { what: `${expected.length} export messages` },
    );
    const got: Array<{ seq: number; revision: number; view: string }> = [];
    for (let seq = 1; seq <= expected.length; seq++) {
      const m = decodeExport((await nats.jsm.streams.getMessage(stream, { seq }))!.data);
      got.push({ seq: m.seq, revision: m.revision, view: canonicalJson(m.resources) });
    }
    expect(got).toEqual(expected.map((e, i) => ({ seq: i + 1, ...e })));
  });
});
