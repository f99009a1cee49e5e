import type { Change } from '@meshplane/domain';
import { MapError } from '../../libs/dataplane/src/backend';
import { BpfMapBackend, cgroup2Mount, isNativeError, loadAddon } from '../../libs/dataplane/src/bpf';
import { policy, route, service, workload } from '../../libs/dataplane/src/test-fixtures';
import { freePort } from '../harness/ports';
import { type Counts, describeBpf, type MeshClient, MeshTestEnv, NODE, percent } from './mesh-env';

/*
 * Socket-level load balancing against the real kernel: client processes in workload
 * cgroups dial a VIP in 127.100.0.0/16; backends listen on 127.0.1.x in the test process
 * (outside the mesh cgroup). Everything written to the maps goes compile -> plan ->
 * BpfMapBackend batches, exactly as the agent writes it.
 */

const VIP = '127.100.0.10';
const EMPTY_VIP = '127.100.0.11';

describeBpf('BPF data plane: VIP load balancing and L4 authorization', () => {
  const env = new MeshTestEnv();
  let vport: number; // service port (nothing listens on it: a miss shows as ECONNREFUSED)
  let tport: number; // backends' TCP targetPort
  let uport: number; // backends' UDP targetPort
  let clientA: MeshClient;
  let clientB: MeshClient;
  let base: Change[];

  const tcp = (c: MeshClient, n: number, host = VIP) => c.run<Counts>('tcp', { host, port: vport, n });

  beforeAll(async () => {
    vport = await freePort();
    tport = await env.tcpBackend('127.0.1.1', 0, 'v1');
    await env.tcpBackend('127.0.1.2', tport, 'v2');
    uport = await env.udpBackend('127.0.1.1', 0, 'u1');
    await env.udpBackend('127.0.1.2', uport, 'u2');
    await env.open();
    base = [
      service('echo', VIP, {
        ports: [
          { port: vport, protocol: 'TCP', targetPort: tport },
          { port: vport, protocol: 'UDP', targetPort: uport },
        ],
      }),
      workload('echo-v1', '127.0.1.1', 'node-b', { labels: { app: 'echo', version: 'v1' } }),
      workload('echo-v2', '127.0.1.2', 'node-b', { labels: { app: 'echo', version: 'v2' } }),
      workload('client-a', '127.0.2.1', NODE, { labels: { app: 'client' } }),
      workload('client-b', '127.0.2.2', NODE, { labels: { app: 'client' } }),
    ];
    clientA = await env.spawnWorkload('client-a');
    clientB = await env.spawnWorkload('client-b');
    await env.apply(base);
  });

  afterAll(async () => {
    await env.cleanup();
  });

  it('attaches every program to its own cgroup only', async () => {
    expect(Object.values(env.backend!.attachments).every((a) => a === 'attached')).toBe(true);
    const info = loadAddon().linkInfo(env.backend!.linkPin('connect4'));
    expect(info?.cgroupId).toBeDefined();
  });

  it('a connect() to the VIP reaches the backends, and getpeername() reports the VIP', async () => {
    const r = await tcp(clientA, 200);
    expect(r.errors).toEqual({});
    expect(Object.keys(r.byName).sort()).toEqual(['v1', 'v2']);
    expect(r.byName.v1! + r.byName.v2!).toBe(200);
    expect(r.peers).toEqual({ [`${VIP}:${vport}`]: 200 });
  });

  it('UDP through the VIP: unconnected replies come from the VIP, connected peers are the VIP', async () => {
    const unconnected = await clientA.run<Counts>('udp', { host: VIP, port: vport, n: 50 });
    expect(unconnected.errors).toEqual({});
    expect(Object.keys(unconnected.byName).sort()).toEqual(['u1', 'u2']);
    expect(unconnected.from).toEqual({ [`${VIP}:${vport}`]: 50 });

    const connected = await clientA.run<Counts>('udp', { host: VIP, port: vport, n: 5, connected: true });
    expect(connected.errors).toEqual({});
    expect(connected.peer).toBe(`${VIP}:${vport}`);
    expect(connected.from).toEqual({ [`${VIP}:${vport}`]: 5 });
    expect(Object.keys(connected.byName)).toHaveLength(1); // one connected socket, one backend
  });

  it('a 90/10 Route splits 2,000 connections within ±3 points', async () => {
    await env.apply([
      route('echo-split', 'echo', [
        { selector: { version: 'v1' }, weight: 90 },
        { selector: { version: 'v2' }, weight: 10 },
      ]),
    ]);
    const r = await tcp(clientA, 2000);
    expect(r.errors).toEqual({});
    const v1 = percent(r.byName, 'v1');
    expect(Math.abs(v1 - 90)).toBeLessThanOrEqual(3);
    process.stdout.write(`90/10 route over 2000 connections: v1 ${v1.toFixed(1)}%\n`);

    await env.apply([route('echo-split', 'echo', [{ selector: { version: 'v2' }, weight: 1 }])]);
    expect((await tcp(clientA, 100)).byName).toEqual({ v2: 100 });
    await env.apply([{ op: 'delete', kind: 'Route', namespace: 'default', name: 'echo-split' }]);
  });

  it('a DENY policy fails connect() with EPERM for that identity only; removing it restores access', async () => {
    await env.apply([policy('deny-a', 'echo', 'DENY', ['client-a'])]);
    expect((await tcp(clientA, 20)).errors).toEqual({ EPERM: 20 });
    expect((await clientA.run<Counts>('udp', { host: VIP, port: vport, n: 3 })).errors).toEqual({ EPERM: 3 });
    const b = await tcp(clientB, 20);
    expect(b.errors).toEqual({});

    await env.apply([{ op: 'delete', kind: 'AuthorizationPolicy', namespace: 'default', name: 'deny-a' }]);
    expect((await tcp(clientA, 20)).errors).toEqual({});
  });

  it('an ALLOW policy admits only the identities it names', async () => {
    await env.apply([policy('allow-b', 'echo', 'ALLOW', ['client-b'])]);
    expect((await tcp(clientA, 10)).errors).toEqual({ EPERM: 10 });
    expect((await tcp(clientB, 10)).errors).toEqual({});
    await env.apply([{ op: 'delete', kind: 'AuthorizationPolicy', namespace: 'default', name: 'allow-b' }]);
    expect((await tcp(clientA, 10)).errors).toEqual({});
  });

  it('pinned links and maps keep serving while no agent runs; a restarted agent adopts them and writes nothing', async () => {
    await env.backend!.close(); // the agent process "dies": its fds go, the pins stay
    expect((await tcp(clientA, 50)).errors).toEqual({});

    await env.open();
    expect(Object.values(env.backend!.attachments).filter((a) => a === 'adopted')).toHaveLength(5);
    const meta = await env.backend!.readMeta();
    expect(meta?.node).toBe(NODE);
    const again = await env.apply([]);
    expect(again.ops).toBe(0);
    expect((await tcp(clientA, 50)).errors).toEqual({});
  });

  it('errors from the addon carry errno names and the map name', async () => {
    const addon = loadAddon();
    const services = env.backend!.mapInfo('mesh_services');
    const [[key, value]] = await collect(env.backend!.iterate('mesh_services'));
    const err = catchErr(() => addon.update(services.fd, key!, value!, 1 /* BPF_NOEXIST */));
    expect(isNativeError(err) && err.code).toBe('EEXIST');
    expect(err).toMatchObject({ errno: -17, map: 'mesh_services', syscall: 'bpf_map_update_elem' });

    expect(catchErr(() => addon.openPinned(`${env.pinDir}/no_such_map`))).toMatchObject({ code: 'ENOENT' });

    const del = await env.backend!.delete('mesh_meta', [new Uint8Array(4)]).catch((e: unknown) => e);
    expect(del).toBeInstanceOf(MapError);
    expect(del).toMatchObject({ code: 'EINVAL', map: 'mesh_meta', op: 'delete' });

    const wrongSize = await env
      .backend!.update('mesh_backends', [[new Uint8Array(3), new Uint8Array(8)]])
      .catch((e: unknown) => e);
    expect(wrongSize).toMatchObject({ code: 'EINVAL', map: 'mesh_backends' });

    await expect(
      BpfMapBackend.open({ node: NODE, pinDir: '/tmp/not-bpffs', cgroup: env.cgroup }),
    ).rejects.toThrow(/bpffs/);
    // Never the root cgroup (every process of the machine would be load balanced).
    await expect(
      BpfMapBackend.open({ node: NODE, pinDir: `${env.pinDir}-x`, cgroup: cgroup2Mount()! }),
    ).rejects.toThrow(/refusing the root cgroup/);
  });

  it('a VIP whose service has no backend fails fast with EHOSTUNREACH', async () => {
    await env.apply([
      service('empty', EMPTY_VIP, { ports: [{ port: vport, protocol: 'TCP' }], selector: { app: 'nobody' } }),
    ]);
    expect((await tcp(clientA, 5, EMPTY_VIP)).errors).toEqual({ EHOSTUNREACH: 5 });
  });

  it('deleting the Service: the VIP no longer reaches a backend', async () => {
    await env.apply([{ op: 'delete', kind: 'Service', namespace: 'default', name: 'echo' }]);
    const r = await tcp(clientA, 20);
    expect(r.byName).toEqual({});
    expect(r.errors).toEqual({ ECONNREFUSED: 20 });
  });
});

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

function catchErr(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an exception');
}
