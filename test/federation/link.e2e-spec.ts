/*
 * Federation between two clusters over real NATS leafnodes and JetStream domains: east exports a
 * service, west imports it into its own log and programs its backends; cutting the link keeps
 * them for the cache TTL, then withdraws them; restoring the link catches up with no duplicate
 * and no missed export. Private NATS servers and databases per cluster, loopback only.
 */
import { exportStreamName, importStreamName } from '@meshplane/messaging';
import { jetstreamManager } from '@nats-io/jetstream';
import { type FederationResponse, federationTable } from '../../services/meshctl/src/commands/federation';
import { waitFor } from '../harness';
import { startApi } from '../propagation/helpers';
import {
  del,
  type FedCluster,
  failWithLog,
  importedNames,
  service,
  startFederation,
  stopFederation,
  workload,
} from './harness';

jest.setTimeout(180_000);

const VIP = '127.100.7.1';
const FRONTEND = `${VIP}:9080/TCP`;
const logs: Array<Record<string, unknown>> = [];
let clusters: FedCluster[] = [];
let east: FedCluster;
let west: FedCluster;

async function eastExportSeq(): Promise<number> {
  const jsm = await jetstreamManager(east.nc!);
  return (await jsm.streams.info(exportStreamName('east'))).state.last_seq;
}

const explain = (err: unknown): never => failWithLog(logs, err);

beforeAll(async () => {
  clusters = await startFederation(['east', 'west'], { cacheTtlMs: 3_000, probeMs: 200, logs });
  [east, west] = clusters as [FedCluster, FedCluster];
});

afterAll(async () => {
  await stopFederation(clusters);
});

test('an exported service in east becomes an import change set in west and west programs its backends', async () => {
  const rev = await east.commit([
    service('web', VIP),
    workload('web-1', '127.0.1.11', 'web'),
    workload('web-2', '127.0.1.12', 'web'),
    workload('db-1', '127.0.1.19', 'db'), // not selected by an exported service: stays home
  ]);
  await waitFor(async () => (await west.imports('east')).length >= 1, {
    timeoutMs: 30_000,
    what: 'the first import change set in west',
  }).catch(explain);

  const [first] = await west.imports('east');
  expect(first!.reason).toBe(`import from east revision ${rev} (export seq 1)`);
  expect(first!.federation).toEqual({ origin: 'east', revision: rev, seq: 1 });
  expect(await importedNames(west, 'east')).toEqual([
    'Service/web.east',
    'Workload/web-1.east',
    'Workload/web-2.east',
  ]);
  const svc = (await west.state()).resources.get('Service/default/web.east');
  expect(svc?.spec).toMatchObject({ vip: VIP, export: true });

  expect(await west.syncedSlots(FRONTEND)).toEqual(['127.0.1.11:9080/TCP', '127.0.1.12:9080/TCP']);
  await waitFor(async () => (await west.link('east'))?.lastImportedSeq === 1, { what: 'west link status' });
  expect(await west.link('east')).toMatchObject({
    state: 'connected',
    withdrawn: false,
    lastImportedRevision: rev,
    lag: 0,
  });
  // Nothing of west is exported, so east imports nothing.
  expect(await east.imports('west')).toEqual([]);
});

test('GET /v1/federation and meshctl federation status show the link in west', async () => {
  const api = await startApi(west.db.url, 'west', west.nats.url);
  try {
    const r = (await api.call('GET', '/v1/federation')) as FederationResponse;
    expect(r.cluster).toBe('west');
    expect(r.peers).toEqual([
      expect.objectContaining({
        peer: 'east',
        state: 'connected',
        withdrawn: false,
        lastImportedSeq: 1,
        peerSeq: 1,
        lag: 0,
        stale: false,
      }),
    ]);
    const lines = federationTable(r).trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^PEER\s+LINK\s+SINCE\s+PEER-REVISION\s+EXPORT-SEQ\s+LAG\s+IMPORTED-AS\s+ERROR$/,
    );
    expect(lines[1]).toMatch(/^east\s+CONNECTED\s+\S+ ago\s+\d+\s+1\/1\s+0\s+\d+/);
    // east federates with west but imported nothing (west exports nothing): connected, seq 0.
    const eastApi = await startApi(east.db.url, 'east', east.nats.url);
    try {
      expect((await eastApi.call('GET', '/v1/federation')).peers).toEqual([
        expect.objectContaining({ peer: 'west', state: 'connected', lastImportedSeq: 0, lag: 0 }),
      ]);
    } finally {
      await eastApi.close();
    }
  } finally {
    await api.close();
  }
});

test('a change that does not touch the exported view publishes no export', async () => {
  const before = await eastExportSeq();
  await east.commit([workload('db-2', '127.0.1.20', 'db')]);
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  await east.commit([workload('web-3', '127.0.1.13', 'web')], 'scale web', traceparent);
  await waitFor(async () => (await west.imports('east')).length >= 2, { what: 'the second import' }).catch(
    explain,
  );
  expect(await eastExportSeq()).toBe(before + 1);
  expect((await west.imports('east')).map((i) => i.federation.seq)).toEqual([1, 2]);
  // The import carries the trace of the change in east: one trace from east's commit to west's maps.
  expect((await west.imports('east'))[1]!.traceContext).toBe(traceparent);
  expect(await west.syncedSlots(FRONTEND)).toEqual([
    '127.0.1.11:9080/TCP',
    '127.0.1.12:9080/TCP',
    '127.0.1.13:9080/TCP',
  ]);
});

test('cutting the link keeps the backends for the TTL, then withdraws them; restoring it catches up gap-free', async () => {
  await east.nats.stop();
  await waitFor(async () => (await west.link('east'))?.state === 'disconnected', {
    timeoutMs: 20_000,
    what: 'west to see east disconnected',
  }).catch(explain);
  await waitFor(async () => (await importedNames(west, 'east')).length === 0, {
    timeoutMs: 30_000,
    what: 'the withdrawal after the cache TTL',
  }).catch(explain);
  const withdraw = (await west.imports('east')).at(-1)!;
  expect(withdraw.reason).toBe('withdraw imports from east: peer east unreachable for 3s');
  expect(withdraw.federation).toMatchObject({ origin: 'east', withdrawn: true });
  // Until the withdrawal (after the TTL) west kept the last-known imports.
  const before = await west.store.stateAt(withdraw.revision - 1);
  expect([...before.resources.values()].filter((r) => r.origin === 'east')).toHaveLength(4);
  expect(await west.syncedSlots(FRONTEND)).toEqual([]);
  expect(await west.link('east')).toMatchObject({ state: 'disconnected', withdrawn: true });

  // East keeps working on its own log while the link is down; its relay publishes on return.
  await east.commit([workload('web-4', '127.0.1.14', 'web')]);
  await east.commit([del('Workload', 'web-1')]);
  await east.nats.start();
  // East's relay publishes the two exports once its NATS is back; then west must catch up.
  await waitFor(async () => (await eastExportSeq().catch(() => 0)) === 4, {
    timeoutMs: 60_000,
    what: "east's relay to publish exports 3 and 4",
  });

  await waitFor(
    async () => {
      const l = await west.link('east');
      return l?.state === 'connected' && !l.withdrawn && l.lastImportedSeq === (await eastExportSeq());
    },
    { timeoutMs: 60_000, what: 'west to catch up with east' },
  ).catch(explain);
  expect(await eastExportSeq()).toBe(4);
  expect(await importedNames(west, 'east')).toEqual([
    'Service/web.east',
    'Workload/web-2.east',
    'Workload/web-3.east',
    'Workload/web-4.east',
  ]);
  expect(await west.syncedSlots(FRONTEND)).toEqual([
    '127.0.1.12:9080/TCP',
    '127.0.1.13:9080/TCP',
    '127.0.1.14:9080/TCP',
  ]);

  // The log of west shows every export of east exactly once (plus the re-import of the last one
  // seen before the withdrawal), in order: gap-free and without duplicates.
  const imports = await west.imports('east');
  const seqs = imports
    .filter((i) => !i.federation.withdrawn && !i.federation.reimport)
    .map((i) => i.federation.seq);
  expect(seqs).toEqual([1, 2, 3, 4]);
  const kinds = imports.map((i) =>
    i.federation.withdrawn
      ? 'withdraw'
      : i.federation.reimport
        ? `reimport ${i.federation.seq}`
        : `import ${i.federation.seq}`,
  );
  // Whether the last view before the cut is re-applied depends on whether export 3 had arrived
  // when the link came back (it restores everything by itself); either way nothing is missed.
  expect([
    ['import 1', 'import 2', 'withdraw', 'reimport 2', 'import 3', 'import 4'],
    ['import 1', 'import 2', 'withdraw', 'import 3', 'import 4'],
  ]).toContainEqual(kinds);
  expect(await west.store.verify()).toMatchObject({ ok: true });
});

test('a restarted importer resumes from its log and imports nothing twice', async () => {
  const before = await west.imports('east');
  await west.importer!.stop();
  await east.commit([workload('web-5', '127.0.1.15', 'web')]);
  await west.startImporterOnly();
  await waitFor(async () => (await west.imports('east')).length === before.length + 1, {
    what: 'the import of export 5 after the restart',
  }).catch(explain);
  const after = await west.imports('east');
  expect(after.slice(0, before.length)).toEqual(before);
  expect(after.at(-1)!.federation).toEqual({ origin: 'east', revision: expect.any(Number), seq: 5 });
});

test('one importer per cluster is active: a second one stands by, then takes over', async () => {
  const first = west.importer!;
  const second = await west.startImporterOnly('importer-west-2');
  await waitFor(
    () =>
      logs.some(
        (l) => l.instance === 'importer-west-2' && l.msg === 'standby: another importer holds the lock',
      ),
    { what: 'the second importer to stand by' },
  );
  expect(first.leading).toBe(true);
  expect(second.leading).toBe(false);
  const before = (await west.imports('east')).length;
  await first.stop();
  await waitFor(() => second.leading, { what: 'the second importer to take over' });
  await east.commit([workload('web-6', '127.0.1.16', 'web')]);
  await waitFor(async () => (await west.imports('east')).length === before + 1, {
    what: 'the import of export 6 by the second importer',
  }).catch(explain);
  expect((await west.imports('east')).map((i) => i.federation.seq).slice(-2)).toEqual([5, 6]);
});

test('an import consumer lost on the server is reopened after the last export seen', async () => {
  const jsm = await jetstreamManager(west.nc!);
  const stream = importStreamName('west');
  const names: string[] = [];
  for await (const c of jsm.consumers.list(stream)) names.push(c.name);
  expect(names.length).toBeGreaterThan(0);
  for (const name of names) await jsm.consumers.delete(stream, name);
  const before = (await west.imports('east')).length;
  await east.commit([workload('web-7', '127.0.1.17', 'web')]);
  // Two missed idle heartbeats (5 s each) end the lost consumer; the next one starts after export 6.
  await waitFor(async () => (await west.imports('east')).length === before + 1, {
    timeoutMs: 30_000,
    what: 'the import of export 7 through a reopened consumer',
  }).catch(explain);
  expect((await west.imports('east')).map((i) => i.federation.seq).slice(-2)).toEqual([6, 7]);
  expect(logs.some((l) => l.msg === 'import consumer ended; reopening' && l.peer === 'east')).toBe(true);
});
