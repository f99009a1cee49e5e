/*
 * Three clusters, each exporting its own `web` (same VIP, affinity none) and importing the other
 * two over leafnodes (east is the hub; west and north are leaves, so west <-> north crosses it):
 * all three converge on the same global service with every cluster's backends.
 */
import { waitFor } from '../harness';
import { type FedCluster, service, startFederation, stopFederation, workload } from './harness';

jest.setTimeout(180_000);

const VIP = '127.100.8.1';
const FRONTEND = `${VIP}:9080/TCP`;
const NAMES = ['east', 'west', 'north'];
const ADDRESS: Record<string, string> = { east: '127.0.1.31', west: '127.0.1.32', north: '127.0.1.33' };
const logs: Array<Record<string, unknown>> = [];
let clusters: FedCluster[] = [];

beforeAll(async () => {
  clusters = await startFederation(NAMES, { cacheTtlMs: 60_000, probeMs: 200, logs });
});

afterAll(async () => {
  await stopFederation(clusters);
});

const globalMembers = async (c: FedCluster) =>
  [...(await c.state()).resources.values()]
    .filter((r) => r.name.split('.')[0]!.startsWith('web'))
    .map((r) => `${r.kind}/${r.name}@${r.origin ?? 'local'}`)
    .sort();

test('three clusters in a leafnode federation converge on the same global service', async () => {
  for (const c of clusters) {
    await c.commit([
      service('web', VIP, { affinity: 'none' }),
      workload(`web-${c.name}`, ADDRESS[c.name]!, 'web'),
    ]);
  }
  const expectedSlots = Object.values(ADDRESS)
    .map((a) => `${a}:9080/TCP`)
    .sort();
  for (const c of clusters) {
    await waitFor(async () => (await globalMembers(c)).length === 6, {
      timeoutMs: 60_000,
      what: `${c.name} to import both peers`,
    }).catch((err: Error) => {
      throw new Error(
        `${err.message}\n${logs
          .slice(-20)
          .map((l) => JSON.stringify(l))
          .join('\n')}`,
      );
    });
    const others = NAMES.filter((n) => n !== c.name);
    expect(await globalMembers(c)).toEqual(
      [
        `Service/web@local`,
        `Workload/web-${c.name}@local`,
        ...others.flatMap((o) => [`Service/web.${o}@${o}`, `Workload/web-${o}.${o}@${o}`]),
      ].sort(),
    );
    for (const o of others) {
      expect((await c.imports(o)).map((i) => i.federation.seq)).toEqual([1]);
      expect(await c.link(o)).toMatchObject({ state: 'connected', lastImportedSeq: 1, lag: 0 });
    }
    // affinity none: every cluster's backends behind the one VIP, in every cluster.
    expect(await c.syncedSlots(FRONTEND)).toEqual(expectedSlots);
  }
});
