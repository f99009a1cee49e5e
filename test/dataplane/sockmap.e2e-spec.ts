import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import net from 'node:net';
import { codecs, u32ToIpv4 } from '../../libs/dataplane/src/codec';
import { service, workload } from '../../libs/dataplane/src/test-fixtures';
import { freePort } from '../harness/ports';
import { waitFor } from '../harness/wait';
import { describeBpf, type MeshClient, MeshTestEnv, NODE } from './mesh-env';

/*
 * Sockmap acceleration between two meshed workloads of this node: both ends of the
 * connection must be in mesh_socks (keyed by 4-tuple), bytes must arrive intact both
 * ways, and they must NOT have gone through TCP: sk_msg hands them from socket to
 * socket, so the kernel's tcp_info for the spliced socket shows (almost) no bytes acked.
 * Only such pairs enter the sockhash: a meshed client talking to a listener outside the
 * mesh (by VIP or directly), or an outside client talking to a meshed server, stays out
 * of it entirely and pays no sk_msg.
 */

const VIP = '127.100.0.20';
const PLAIN_VIP = '127.100.0.21';
const SERVER = '127.0.1.3';
const PLAIN_SERVER = '127.0.1.4';
const MiB = 1 << 20;

interface Held {
  name: string;
  local: string;
  remote: string;
}

describeBpf('BPF data plane: sockmap acceleration', () => {
  const env = new MeshTestEnv();
  let port: number;
  let vport: number;
  let plainPort: number;
  let plain: net.Server;
  const plainConns = new Set<net.Socket>();
  let server: MeshClient;
  let client: MeshClient;

  const sockKeys = async (): Promise<string[]> => {
    const out: string[] = [];
    for await (const [k] of env.backend!.iterate('mesh_socks')) {
      const s = codecs.sockKey.decode(k);
      out.push(`${u32ToIpv4(s.local_ip)}:${s.local_port}>${u32ToIpv4(s.remote_ip)}:${s.remote_port}`);
    }
    return out;
  };

  const listeners = async (): Promise<string[]> => {
    const out: string[] = [];
    for await (const [k] of env.backend!.iterate('mesh_listeners')) {
      const l = codecs.listenerKey.decode(k);
      out.push(`${u32ToIpv4(l.addr)}:${l.port}`);
    }
    return out;
  };

  // Data bytes the kernel saw acknowledged on a TCP socket (0 when nothing went through TCP).
  const bytesAcked = (local: string, remote: string): number => {
    const [lip, lport] = local.split(':');
    const [rip, rport] = remote.split(':');
    const out = execFileSync('ss', ['-tinH', 'src', `${lip}:${lport}`, 'dst', `${rip}:${rport}`], {
      encoding: 'utf8',
    });
    return Number(/bytes_acked:(\d+)/.exec(out)?.[1] ?? 0);
  };

  beforeAll(async () => {
    port = await freePort();
    vport = await freePort();
    plainPort = await freePort();
    // An echo server in THIS process, outside the mesh cgroup: a non-meshed loopback listener.
    plain = net.createServer((c) => {
      plainConns.add(c);
      c.on('close', () => plainConns.delete(c));
      c.on('error', () => undefined);
      c.write('plain\n');
      c.pipe(c);
    });
    await new Promise<void>((resolve, reject) => {
      plain.once('error', reject);
      plain.listen({ host: PLAIN_SERVER, port: plainPort, exclusive: true }, resolve);
    });
    await env.open();
    server = await env.spawnWorkload('echo-srv');
    client = await env.spawnWorkload('client');
    await server.run('listen', { host: SERVER, port, name: 'srv' });
    await env.apply([
      service('echo', VIP, {
        ports: [{ port: vport, protocol: 'TCP', targetPort: port }],
        selector: { app: 'echo' },
      }),
      workload('echo-srv', SERVER, NODE, { labels: { app: 'echo' } }),
      workload('client', '127.0.2.3', NODE, { labels: { app: 'client' } }),
      // A Service whose backend is the non-meshed listener (no Workload on this node).
      service('plain', PLAIN_VIP, {
        ports: [{ port: vport, protocol: 'TCP', targetPort: plainPort }],
        selector: { app: 'plain' },
      }),
      workload('plain-srv', PLAIN_SERVER, 'node-b', { labels: { app: 'plain' } }),
    ]);
  });

  afterAll(async () => {
    try {
      await env.cleanup();
    } finally {
      for (const c of plainConns) c.destroy();
      plain?.close();
    }
  });

  it('puts both ends of a same-node connection in the sockhash, splices 1 MiB each way intact, and drops them on close', async () => {
    const held = await client.run<Held>('hold', { host: VIP, port: vport });
    expect(held.error).toBeUndefined();
    expect(held.name).toBe('srv');
    expect(held.remote).toBe(`${VIP}:${vport}`); // getpeername4 shows the VIP

    const clientEnd = `${held.local}>${SERVER}:${port}`;
    const serverEnd = `${SERVER}:${port}>${held.local}`;
    const keys = await sockKeys();
    expect(keys).toEqual(expect.arrayContaining([clientEnd, serverEnd]));
    // The accepting end consumed the connecting end's pending record.
    const pending: string[] = [];
    for await (const [k] of env.backend!.iterate('mesh_sk_pending')) {
      const p = codecs.sockKey.decode(k);
      pending.push(`${u32ToIpv4(p.local_ip)}:${p.local_port}>${u32ToIpv4(p.remote_ip)}:${p.remote_port}`);
    }
    expect(pending).not.toContain(clientEnd);

    const t0 = process.hrtime.bigint();
    const r = await client.run<{ sent: string; received: string }>('transfer', { bytes: MiB });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    expect(r.received).toBe(r.sent);
    const acked = bytesAcked(held.local, `${SERVER}:${port}`);
    process.stdout.write(
      `sockmap: 1 MiB echoed in ${ms.toFixed(1)} ms, TCP bytes_acked on the client socket ${acked}\n`,
    );
    expect(acked).toBeLessThan(MiB / 100); // the bytes bypassed TCP

    await client.run('release');
    await waitFor(async () => !(await sockKeys()).includes(clientEnd), {
      what: 'the closed socket to leave mesh_socks',
    });
  });

  it('a peer outside the mesh is not spliced but still gets its data intact', async () => {
    // This process is not in the mesh cgroup: its socket never enters the sockhash, so
    // the server's sk_msg finds no peer and falls back to plain TCP.
    const sock = net.connect({ host: SERVER, port });
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    const data = crypto.randomBytes(MiB);
    const greeting = Buffer.from('srv\n');
    const chunks: Buffer[] = [];
    let got = 0;
    const done = new Promise<void>((resolve) =>
      sock.on('data', (d) => {
        chunks.push(d);
        got += d.length;
        if (got >= greeting.length + MiB) resolve();
      }),
    );
    sock.write(data);
    await done;
    const all = Buffer.concat(chunks);
    expect(all.subarray(0, greeting.length)).toEqual(greeting);
    expect(all.subarray(greeting.length).equals(data)).toBe(true);
    const local = `${sock.localAddress}:${sock.localPort}`;
    expect(bytesAcked(local, `${SERVER}:${port}`)).toBeGreaterThanOrEqual(MiB);
    // Neither end entered the sockhash: the meshed server's accepted socket has no
    // meshed peer, so its replies do not run sk_msg either.
    const keys = await sockKeys();
    expect(keys).not.toContain(`${SERVER}:${port}>${local}`);
    expect(keys).not.toContain(`${local}>${SERVER}:${port}`);
    sock.destroy();
  });

  it.each([
    ['through a VIP', () => ({ host: PLAIN_VIP, port: vport })],
    ['dialled directly', () => ({ host: PLAIN_SERVER, port: plainPort })],
  ])(
    'a meshed client talking to a non-meshed loopback listener (%s) stays out of the sockhash',
    async (_how, target) => {
      const held = await client.run<Held>('hold', target());
      expect(held.error).toBeUndefined();
      expect(held.name).toBe('plain');
      const backendEnd = `${PLAIN_SERVER}:${plainPort}`;
      const r = await client.run<{ sent: string; received: string }>('transfer', { bytes: MiB });
      expect(r.received).toBe(r.sent);
      const keys = await sockKeys();
      expect(keys).not.toContain(`${held.local}>${backendEnd}`);
      expect(keys.filter((k) => k.includes(backendEnd))).toEqual([]);
      expect(bytesAcked(held.local, backendEnd)).toBeGreaterThanOrEqual(MiB); // plain TCP
      await client.run('release');
    },
  );

  it("records the meshed server's listener while it listens, and forgets it when it closes", async () => {
    expect(await listeners()).toEqual([`${SERVER}:${port}`]); // not the plain one
    await server.run('unlisten');
    await waitFor(async () => (await listeners()).length === 0, {
      what: 'the closed listener to leave mesh_listeners',
    });
    // A listen() on the same address registers again.
    await server.run('listen', { host: SERVER, port, name: 'srv' });
    expect(await listeners()).toEqual([`${SERVER}:${port}`]);
  });
});
