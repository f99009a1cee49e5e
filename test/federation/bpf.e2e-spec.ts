/*
 * Global services in the real kernel: cluster B's data plane (its own cgroup and pin dir,
 * maps written compile -> plan -> BPF batches as B's agent writes them) with Services and
 * Workloads imported from cluster A exactly as B's importer stores them (domain
 * importChanges). A client in B dials B's VIP; the backends listen on loopback in this
 * process: B's on 127.0.1.x, A's on 127.0.2.x (each cluster with its own targetPort).
 */
import {
  applyChanges,
  type Change,
  emptyState,
  exportedView,
  importChangeList,
  importChanges,
  type MeshState,
} from '@meshplane/domain';
import { remove, service, workload } from '../../libs/dataplane/src/test-fixtures';
import { type Counts, describeBpf, type MeshClient, MeshTestEnv, NODE } from '../dataplane/mesh-env';
import { freePort } from '../harness/ports';

const VIP = '127.100.6.1';
const REMOTE_ONLY_VIP = '127.100.6.2';

const withSpec = (c: Change, extra: Record<string, unknown>): Change =>
  c.op === 'put' ? { ...c, spec: { ...c.spec, ...extra } } : c;

describeBpf('federation: a global service through B’s VIP reaches A’s backends', () => {
  const env = new MeshTestEnv();
  let client: MeshClient;
  let vport: number;
  let bPort: number; // B's targetPort
  let aPort: number; // A's targetPort
  let a: MeshState = emptyState();

  const tcp = (n: number, host = VIP) => client.run<Counts>('tcp', { host, port: vport, n });
  /** A commits `changes`; B imports A's new export view (what B's importer appends). */
  const aCommitAndImport = async (changes: Change[]) => {
    a = applyChanges(a, changes, a.revision + 1);
    const ic = importChanges(env.state, 'east', exportedView(a, 'east'));
    await env.apply(importChangeList(ic));
  };

  beforeAll(async () => {
    vport = await freePort();
    bPort = await env.tcpBackend('127.0.1.1', 0, 'b-1');
    aPort = await env.tcpBackend('127.0.2.1', 0, 'east-1');
    await env.tcpBackend('127.0.2.2', aPort, 'east-2');
    await env.open();
    client = await env.spawnWorkload('client-1');
    await env.apply([
      service('reviews', VIP, { ports: [{ port: vport, protocol: 'TCP', targetPort: bPort }] }),
      workload('reviews-1', '127.0.1.1', 'node-b'),
      workload('client-1', '127.0.1.9', NODE, { labels: { app: 'client' } }),
    ]);
    await aCommitAndImport([
      withSpec(service('reviews', VIP, { ports: [{ port: vport, protocol: 'TCP', targetPort: aPort }] }), {
        export: true,
      }),
      workload('reviews-1', '127.0.2.1', 'a-1'),
    ]);
  });

  afterAll(async () => {
    await env.cleanup();
  });

  it('B imported A’s Service and Workload under A’s name, with origin east', () => {
    const imported = [...env.state.resources.values()].filter((r) => r.origin === 'east').map((r) => r.name);
    expect(imported.sort()).toEqual(['reviews-1.east', 'reviews.east']);
  });

  it('B’s callers use B’s local backend while it has one (affinity local)', async () => {
    const r = await tcp(50);
    expect(r.errors).toEqual({});
    expect(r.byName).toEqual({ 'b-1': 50 });
  });

  it('with B’s workload deleted, connections through B’s VIP fail over to A’s backend', async () => {
    await env.apply([remove('Workload', 'reviews-1')]);
    const r = await tcp(50);
    expect(r.errors).toEqual({});
    expect(r.byName).toEqual({ 'east-1': 50 });
    expect(r.peers).toEqual({ [`${VIP}:${vport}`]: 50 });
  });

  it('follows A: a second backend in A is used after the next import', async () => {
    await aCommitAndImport([workload('reviews-2', '127.0.2.2', 'a-2')]);
    const r = await tcp(200);
    expect(r.errors).toEqual({});
    expect(Object.keys(r.byName).sort()).toEqual(['east-1', 'east-2']);
  });

  it('affinity none spreads over both clusters', async () => {
    await env.apply([
      workload('reviews-1', '127.0.1.1', 'node-b'),
      withSpec(service('reviews', VIP, { ports: [{ port: vport, protocol: 'TCP', targetPort: bPort }] }), {
        affinity: 'none',
      }),
    ]);
    const r = await tcp(300);
    expect(r.errors).toEqual({});
    expect(Object.keys(r.byName).sort()).toEqual(['b-1', 'east-1', 'east-2']);
  });

  it('an imported Service without a local counterpart answers on its own VIP in B', async () => {
    await aCommitAndImport([
      withSpec(
        service('details', REMOTE_ONLY_VIP, {
          ports: [{ port: vport, protocol: 'TCP', targetPort: aPort }],
          selector: { app: 'details' },
        }),
        { export: true },
      ),
      workload('details-1', '127.0.2.2', 'a-1', { labels: { app: 'details' } }),
    ]);
    const r = await tcp(20, REMOTE_ONLY_VIP);
    expect(r.errors).toEqual({});
    expect(r.byName).toEqual({ 'east-2': 20 });
  });
});
