/*
 * A VIP clash from a peer blocks only the clashing resource: east exports web on a VIP that a
 * local Service of west already uses, and api. West imports api (and keeps importing every later
 * export), skips web and its workloads, and says so on the link and in the import change set.
 * When west deletes its Service, web is imported without operator action. Private NATS servers
 * and databases per cluster, loopback only.
 */
import { importIdempotencyKey, type SkippedImport } from '@meshplane/domain';
import { appendImport } from '../../services/importer/src/import-append';
import { readImported } from '../../services/importer/src/resources';
import {
  type FederationResponse,
  federationTable,
  skippedSection,
} from '../../services/meshctl/src/commands/federation';
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

const CLASH_VIP = '127.100.9.1';
const API_VIP = '127.100.9.2';
const frontend = (vip: string) => `${vip}:9080/TCP`;
const logs: Array<Record<string, unknown>> = [];
let clusters: FedCluster[] = [];
let east: FedCluster;
let west: FedCluster;

const explain = (err: unknown): never => failWithLog(logs, err);

const WEB_SKIP = {
  kind: 'Service',
  namespace: 'default',
  name: 'web.east',
  reason: 'vip-conflict',
  vip: frontend(CLASH_VIP),
  holder: { kind: 'Service', namespace: 'default', name: 'legacy' },
  message: `Service default/web.east skipped: ${frontend(CLASH_VIP)} is used by local Service default/legacy (only one global service may use a VIP)`,
};

beforeAll(async () => {
  clusters = await startFederation(['east', 'west'], { cacheTtlMs: 60_000, probeMs: 200, logs });
  [east, west] = clusters as [FedCluster, FedCluster];
});

afterAll(async () => {
  await stopFederation(clusters);
});

test('a clashing Service is skipped, the rest of the view imports, and the link names the clash', async () => {
  await west.commit([
    service('legacy', CLASH_VIP, { export: false }),
    workload('legacy-1', '127.0.1.40', 'legacy'),
  ]);
  const rev = await east.commit([
    service('web', CLASH_VIP),
    service('api', API_VIP),
    workload('web-1', '127.0.1.41', 'web'),
    workload('api-1', '127.0.1.42', 'api'),
  ]);
  await waitFor(async () => (await west.imports('east')).length >= 1, {
    timeoutMs: 30_000,
    what: 'the first import change set in west',
  }).catch(explain);

  expect(await importedNames(west, 'east')).toEqual(['Service/api.east', 'Workload/api-1.east']);
  const [first] = await west.imports('east');
  expect(first!.reason).toBe(
    `import from east revision ${rev} (export seq 1); skipped 2 of the exported resources: ${WEB_SKIP.message}; ` +
      'Workload default/web-1.east skipped: selected only by skipped Service default/web.east',
  );
  expect(first!.federation).toEqual({
    origin: 'east',
    revision: rev,
    seq: 1,
    skipped: [WEB_SKIP, expect.objectContaining({ name: 'web-1.east', reason: 'selected-only-by-skipped' })],
  });

  await waitFor(async () => (await west.link('east'))?.lastImportedSeq === 1, { what: 'west link status' });
  expect(await west.link('east')).toMatchObject({
    state: 'connected',
    lastError: null,
    lag: 0,
    skippedCount: 2,
    skipped: [WEB_SKIP, expect.objectContaining({ name: 'web-1.east' })],
  });
  // West's agent serves api from east, and the clashing VIP stays west's own.
  expect(await west.syncedSlots(frontend(API_VIP))).toEqual(['127.0.1.42:9080/TCP']);
  expect(await west.slots(frontend(CLASH_VIP))).toEqual(['127.0.1.40:9080/TCP']);
});

test('later exports from the peer are not blocked by the clash', async () => {
  await east.commit([workload('api-2', '127.0.1.43', 'api')]);
  await waitFor(async () => (await west.imports('east')).length >= 2, { what: 'the second import' }).catch(
    explain,
  );
  const second = (await west.imports('east'))[1]!;
  expect(second.federation).toMatchObject({ seq: 2, skipped: [WEB_SKIP, expect.anything()] });
  expect(await importedNames(west, 'east')).toEqual([
    'Service/api.east',
    'Workload/api-1.east',
    'Workload/api-2.east',
  ]);
  expect(await west.syncedSlots(frontend(API_VIP))).toEqual(['127.0.1.42:9080/TCP', '127.0.1.43:9080/TCP']);
});

test('GET /v1/federation and meshctl federation status name the skipped resource', async () => {
  const api = await startApi(west.db.url, 'west', west.nats.url);
  try {
    const r = (await api.call('GET', '/v1/federation')) as FederationResponse;
    expect(r.peers).toEqual([
      expect.objectContaining({ peer: 'east', lastError: null, skippedCount: 2, skipped: expect.any(Array) }),
    ]);
    expect(r.peers[0]!.skipped![0]).toEqual(WEB_SKIP);
    expect(federationTable(r).split('\n')[1]).toMatch(/^east\s+CONNECTED\s/);
    expect(skippedSection(r)).toBe(
      '\nSkipped from east (2; imported once the clash is gone):\n' +
        `  ${WEB_SKIP.message}\n` +
        '  Workload default/web-1.east skipped: selected only by skipped Service default/web.east\n',
    );
  } finally {
    await api.close();
  }
});

test('deleting the local Service imports the skipped one without a new export; peer seqs stay gap-free', async () => {
  await west.commit([del('Service', 'legacy')], 'retire legacy');
  await waitFor(async () => (await importedNames(west, 'east')).includes('Service/web.east'), {
    timeoutMs: 30_000,
    what: 'web.east to be imported once the VIP is free',
  }).catch(explain);
  expect(await importedNames(west, 'east')).toEqual([
    'Service/api.east',
    'Service/web.east',
    'Workload/api-1.east',
    'Workload/api-2.east',
    'Workload/web-1.east',
  ]);
  const reapplied = (await west.imports('east')).at(-1)!;
  expect(reapplied.reason).toMatch(
    /^import from east revision \d+ \(export seq 2\), re-applied after a local change$/,
  );
  expect(reapplied.federation).toEqual({
    origin: 'east',
    revision: expect.any(Number),
    seq: 2,
    reapply: true,
  });
  await waitFor(async () => (await west.link('east'))?.skippedCount === 0, {
    what: 'the link to clear the skip',
  });
  expect((await west.link('east'))?.skipped).toEqual([]);
  expect(await west.syncedSlots(frontend(CLASH_VIP))).toEqual(['127.0.1.41:9080/TCP']);

  // One more export: imported as usual, and every export seq appears exactly once in order.
  await east.commit([workload('web-2', '127.0.1.44', 'web')]);
  await waitFor(async () => (await west.link('east'))?.lastImportedSeq === 3, { what: 'export 3' }).catch(
    explain,
  );
  const imports = await west.imports('east');
  expect(imports.filter((i) => !i.federation.reapply).map((i) => i.federation.seq)).toEqual([1, 2, 3]);
  expect(
    imports.map((i) => (i.federation.reapply ? `reapply ${i.federation.seq}` : `import ${i.federation.seq}`)),
  ).toEqual(['import 1', 'import 2', 'reapply 2', 'import 3']);
  expect(await west.store.verify()).toMatchObject({ ok: true });
});

test('the split is decided under the append lock: a stale plan is re-planned, in both directions', async () => {
  // A peer no importer runs for here ("south"), so only these calls write its imports.
  const ports = [{ port: 9080, protocol: 'TCP' }];
  const view = (seq: number) => ({
    revision: seq,
    seq,
    resources: [
      {
        kind: 'Service',
        namespace: 'default',
        name: 'shop',
        spec: { vip: '127.100.9.7', ports, selector: { app: 'shop' } },
      },
      {
        kind: 'Service',
        namespace: 'default',
        name: 'cart',
        spec: { vip: '127.100.9.8', ports, selector: { app: 'cart' } },
      },
    ],
  });
  await west.commit([service('kiosk', '127.100.9.7', { export: false })]);
  const request = (seq: number, guess: SkippedImport[]) => ({
    store: west.store,
    peer: 'south',
    view: view(seq),
    importedState: () => readImported(west.store, 'south'),
    guess,
    idempotencyKey: importIdempotencyKey('south', seq),
    traceContext: null,
  });
  // Planned as if nothing clashed: the lock finds kiosk, and shop is skipped.
  const a = await appendImport(request(1, []));
  expect(a.skipped.map((s) => s.name)).toEqual(['shop.south']);
  expect(a.result?.status).toBe('appended');
  expect(await importedNames(west, 'south')).toEqual(['Service/cart.south']);

  // Planned with the old skip after kiosk moved: the lock finds the VIP free, and shop imports.
  await west.commit([service('kiosk', '127.100.9.17', { export: false })]);
  const b = await appendImport(request(2, a.skipped));
  expect(b.skipped).toEqual([]);
  expect(b.result?.status).toBe('appended');
  expect(await importedNames(west, 'south')).toEqual(['Service/cart.south', 'Service/shop.south']);
  const last = (await west.imports('south')).at(-1)!;
  expect(last.federation).toEqual({ origin: 'south', revision: 2, seq: 2 });
});
