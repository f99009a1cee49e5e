/*
 * Three clusters in a full mesh of leafnodes (every pair linked directly, one link account per
 * peer: test/federation/nats-config.ts), each exporting its own `web` (same VIP, affinity none)
 * and importing the other two: all three converge on the same global service with every
 * cluster's backends. The links are direct: with any one NATS server stopped, the other two
 * still import each other's exports (through a hub, stopping the hub would cut them), and the
 * stopped one catches up with no gap once it is back.
 */
import fs from 'node:fs';
import { waitFor } from '../harness';
import { type FedCluster, failWithLog, service, startFederation, stopFederation, workload } from './harness';

jest.setTimeout(300_000);

const VIP = '127.100.8.1';
const FRONTEND = `${VIP}:9080/TCP`;
const NAMES = ['east', 'west', 'north'];
const logs: Array<Record<string, unknown>> = [];
let clusters: FedCluster[] = [];
/** Every cluster's local `web` workloads (name -> address), as committed so far. */
const local: Record<string, Record<string, string>> = { east: {}, west: {}, north: {} };
/** Every cluster's export seq, as committed so far. */
const exportSeq: Record<string, number> = { east: 0, west: 0, north: 0 };
let nextAddress = 31;

beforeAll(async () => {
  clusters = await startFederation(NAMES, { cacheTtlMs: 60_000, probeMs: 200, logs, topology: 'mesh' });
});

afterAll(async () => {
  await stopFederation(clusters);
});

const cluster = (name: string) => clusters.find((c) => c.name === name)!;
const explain = (err: unknown): never => failWithLog(logs, err);

/** One exported change in `c`: a new `web` workload (and the Service on the first call). */
async function addWebWorkload(c: FedCluster): Promise<void> {
  const name = `web-${c.name}-${Object.keys(local[c.name]!).length + 1}`;
  const address = `127.0.1.${nextAddress++}`;
  const first = exportSeq[c.name] === 0;
  await c.commit([
    ...(first ? [service('web', VIP, { affinity: 'none' })] : []),
    workload(name, address, 'web'),
  ]);
  local[c.name]![name] = address;
  exportSeq[c.name]! += 1;
}

const globalMembers = async (c: FedCluster) =>
  [...(await c.state()).resources.values()]
    .filter((r) => r.name.split('.')[0]!.startsWith('web'))
    .map((r) => `${r.kind}/${r.name}@${r.origin ?? 'local'}`)
    .sort();

const expectedMembers = (c: FedCluster) =>
  NAMES.flatMap((o) => {
    const suffix = o === c.name ? '' : `.${o}`;
    const origin = o === c.name ? 'local' : o;
    return [
      `Service/web${suffix}@${origin}`,
      ...Object.keys(local[o]!).map((w) => `Workload/${w}${suffix}@${origin}`),
    ];
  }).sort();

const seqs = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/** `c` has imported every export of `peer` so far, gap-free, and shows the link connected. */
async function expectImportedFrom(c: FedCluster, peer: string): Promise<void> {
  await waitFor(async () => (await c.link(peer))?.lastImportedSeq === exportSeq[peer], {
    timeoutMs: 60_000,
    what: `${c.name} to import export ${exportSeq[peer]} of ${peer}`,
  }).catch(explain);
  expect((await c.imports(peer)).map((i) => i.federation.seq)).toEqual(seqs(exportSeq[peer]!));
  await waitFor(async () => (await c.link(peer))?.state === 'connected', {
    what: `${c.name}'s link to ${peer} to be connected`,
  }).catch(explain);
  expect(await c.link(peer)).toMatchObject({ lastImportedSeq: exportSeq[peer], lag: 0 });
}

test('three clusters in a full mesh of leafnodes converge on the same global service', async () => {
  for (const c of clusters) await addWebWorkload(c);
  for (const c of clusters) {
    for (const o of NAMES.filter((n) => n !== c.name)) await expectImportedFrom(c, o);
    expect(await globalMembers(c)).toEqual(expectedMembers(c));
  }
  const allSlots = NAMES.flatMap((n) => Object.values(local[n]!).map((a) => `${a}:9080/TCP`)).sort();
  // affinity none: every cluster's backends behind the one VIP, in every cluster.
  for (const c of clusters) expect(await c.syncedSlots(FRONTEND)).toEqual(allSlots);
});

test.each(NAMES)('with %s stopped, the other two still import from each other', async (stopped) => {
  const down = cluster(stopped);
  const up = clusters.filter((c) => c !== down);
  await down.nats.stop();
  try {
    for (const c of up) await addWebWorkload(c);
    for (const c of up) {
      for (const o of up.filter((x) => x !== c)) await expectImportedFrom(c, o.name);
    }
  } finally {
    await down.nats.start();
  }
  // Back: the stopped cluster catches up from both peers, gap-free, and all three agree again.
  for (const o of up) await expectImportedFrom(down, o.name);
  for (const c of up) await expectImportedFrom(c, stopped);
  for (const c of clusters) {
    await waitFor(async () => (await globalMembers(c)).join() === expectedMembers(c).join(), {
      timeoutMs: 30_000,
      what: `${c.name} to hold every cluster's web workloads`,
    }).catch(explain);
  }
  const allSlots = NAMES.flatMap((n) => Object.values(local[n]!).map((a) => `${a}:9080/TCP`)).sort();
  for (const c of clusters) expect(await c.syncedSlots(FRONTEND)).toEqual(allSlots);
});

test('no NATS server saw a leafnode loop', () => {
  for (const c of clusters) {
    const log = fs.readFileSync(c.nats.logFile, 'utf8');
    expect(log).not.toMatch(/loop detected/i);
    // Each server dialed both peers into their JetStream account, one link account each.
    for (const p of NAMES.filter((n) => n !== c.name)) {
      expect(log).toMatch(new RegExp(`Leafnode connection created for account: LINK_${p.toUpperCase()}\\b`));
    }
  }
});
