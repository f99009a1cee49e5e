import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { codecs, type MapName, toHex, u32ToIpv4 } from '@meshplane/dataplane';
import { connectNats, provisionStatusBucket, statusBucket, streamName } from '@meshplane/messaging';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  BpfMapBackend,
  cgroupId,
  destroyCgroupTree,
  movePid,
  ownCgroupDir,
  teardownPinDir,
} from '../../libs/dataplane/src/bpf';
import { loadRelayConfig, type RelayHandle, startRelay } from '../../services/relay/src';
import { type ApiHarness, BOOTSTRAP_TOKEN, route, startApi } from '../api/api-harness';
import { type Counts, describeBpf, MeshClient, percent } from '../dataplane/mesh-env';
import { freePort, waitFor } from '../harness';
import { type AgentProcess, agentCommand, launchAgent, sweepStale, tcpBackend } from './stack';

/*
 * The whole path of a change on a real kernel: HTTP API (in process, its own database) →
 * Postgres → relay (in process) → JetStream → node agent (a CHILD PROCESS, MESH_DATAPLANE=bpf)
 * → pinned BPF maps → connect() of a client process in a workload cgroup. Loopback only:
 * VIP in 127.100.0.0/16, backends on 127.0.1.x in this process (outside the mesh cgroup).
 * The agent owns <cgroup>/meshplane-test-<pid>-<rand>/node-a and the pin dir
 * /sys/fs/bpf/meshplane-test-<pid>-<rand>; afterAll removes both, the stream, the bucket and
 * the database, also after a failure. The tests build on each other, in order.
 */

const run = promisify(execFile);
const NATS_URL = process.env.NATS_URL || 'nats://127.0.0.1:4222';
const NODE = 'node-a';
const rand = (lo: number, hi: number) => lo + crypto.randomInt(hi - lo + 1);

describeBpf('full stack on the BPF data plane: API → relay → agent (child process) → kernel', () => {
  const tag = `meshplane-test-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  const parentCgroup = path.join(ownCgroupDir(), tag);
  const agentCgroup = path.join(parentCgroup, NODE);
  const pinDir = `/sys/fs/bpf/${tag}`;
  const cluster = `fullstack-${crypto.randomBytes(4).toString('hex')}`;
  const VIP = `127.100.${rand(1, 250)}.${rand(1, 250)}`;
  const B1 = `127.0.1.${rand(20, 120)}`;
  const B2 = `127.0.1.${rand(121, 220)}`;

  let api: ApiHarness | undefined;
  let relay: RelayHandle | undefined;
  let nc: NatsConnection | undefined;
  let kv: KV;
  let agent: AgentProcess | undefined;
  const agents: AgentProcess[] = [];
  const servers: net.Server[] = [];
  let clientChild: ChildProcessWithoutNullStreams | undefined;
  let client: MeshClient;
  let vport: number;
  let tport: number;
  let agentCgroupId = 0n;
  const timings: Record<string, number> = {};

  const agentEnv = (): Record<string, string> => ({
    MESH_NODE: NODE,
    MESH_CLUSTER: cluster,
    NATS_URL,
    MESH_API_URL: api!.url,
    MESH_TOKEN: BOOTSTRAP_TOKEN,
    MESH_DATAPLANE: 'bpf',
    MESH_CGROUP: agentCgroup,
    MESH_BPF_PIN_DIR: pinDir,
    MESH_RESYNC_MS: '1000',
    MESH_HEARTBEAT_MS: '250',
    MESH_CGROUP_SCAN_MS: '200',
  });
  const startAgent = async () => {
    const a = await launchAgent(agentEnv(), parentCgroup);
    agents.push(a);
    return a;
  };

  const post = async (p: string, body: unknown): Promise<number> => {
    const r = await api!.call('POST', p, { body });
    if (r.status !== 201) throw new Error(`POST ${p}: ${r.status} ${r.text}`);
    return r.body.revision as number;
  };
  const change = (apply: unknown[], del: unknown[] = [], reason = 'fullstack e2e') =>
    post('/v1/changes', { reason, apply, delete: del });

  /** The raw KV status value (with the agent's `dataplane` facts, which /v1/nodes does not show). */
  const rawStatus = async () => {
    const e = await kv.get(NODE);
    return e && e.operation === 'PUT'
      ? // biome-ignore lint/suspicious/noExplicitAny: asserted field by field
        (JSON.parse(Buffer.from(e.value).toString('utf8')) as any)
      : undefined;
  };

  /**
   * `meshctl wait` for one node: polls the node's status value in the KV bucket (the value
   * GET /v1/nodes is made of) until it reports `revision` applied without error. Read with a
   * direct KV get: listing the bucket's keys (what /v1/nodes does) can stall while the agent
   * rewrites its status (see the report), and a stalled request would also hold up the API's close.
   */
  const waitApplied = async (revision: number) => {
    const t0 = Date.now();
    let last: unknown;
    try {
      await waitFor(
        async () => {
          const s = await rawStatus();
          last = s;
          return s && s.appliedRevision >= revision && s.lastError === null;
        },
        { timeoutMs: 20_000, intervalMs: 20, what: `${NODE} to apply revision ${revision}` },
      );
    } catch (err) {
      // Say why: what the node reports, and what the agent logged.
      const tail = agent?.logs.slice(-15).map((l) => JSON.stringify(l)) ?? [];
      throw new Error(
        `${(err as Error).message}\nstatus: ${JSON.stringify(last)}\nagent stderr: ${agent?.stderr}\nagent log:\n${tail.join('\n')}`,
      );
    }
    return Date.now() - t0;
  };

  const readMap = async (map: MapName) => {
    const b = await BpfMapBackend.openPinned(pinDir);
    try {
      const out: Array<[Uint8Array, Uint8Array]> = [];
      for await (const e of b.iterate(map)) out.push(e);
      return { entries: out, meta: await b.readMeta() };
    } finally {
      await b.close();
    }
  };

  const tcp = (n: number) => client.run<Counts>('tcp', { host: VIP, port: vport, n, concurrency: 16 });

  const service = () => ({
    kind: 'Service',
    name: 'echo',
    spec: {
      vip: VIP,
      ports: [{ port: vport, protocol: 'TCP', targetPort: tport }],
      selector: { app: 'echo' },
    },
  });
  const workload = (name: string, address: string, node: string, labels: Record<string, string>) => ({
    kind: 'Workload',
    name,
    spec: { address, node, labels, identity: name },
  });

  beforeAll(async () => {
    await sweepStale();
    fs.mkdirSync(parentCgroup);
    vport = await freePort();
    const s1 = await tcpBackend(B1, 0, 'v1');
    servers.push(s1);
    tport = (s1.address() as net.AddressInfo).port;
    servers.push(await tcpBackend(B2, tport, 'v2'));

    nc = await connectNats(NATS_URL, { name: 'fullstack-e2e', firstConnectTimeoutMs: 10_000 });
    kv = await provisionStatusBucket(jetstream(nc), cluster);
    api = await startApi('fullstack', { cluster, natsUrl: NATS_URL, nodeOfflineAfterMs: 5_000 });
    const relayConfig = loadRelayConfig({
      MESH_CLUSTER: cluster,
      DATABASE_URL: api.db.url,
      NATS_URL,
      MESH_RELAY_POLL_MS: '200',
      MESH_LOG_LEVEL: 'warn',
    });
    relay = await startRelay({ ...relayConfig, logSink: () => undefined });
    process.stdout.write(`[fullstack] agent from ${agentCommand().from}, VIP ${VIP}, backends ${B1} ${B2}\n`);
    agent = await startAgent();
  });

  afterAll(async () => {
    const errors: unknown[] = [];
    const attempt = async (f: () => unknown) => {
      try {
        await f();
      } catch (err) {
        errors.push(err);
      }
    };
    if (clientChild?.exitCode === null) clientChild.kill('SIGKILL');
    for (const a of agents) if (a.alive) await attempt(() => a.kill9());
    await attempt(() => relay?.stop());
    for (const s of servers) await attempt(() => new Promise((r) => s.close(() => r(undefined))));
    // Links first (detach), then maps: nothing of this suite stays in the kernel.
    if (fs.existsSync(pinDir)) await attempt(() => teardownPinDir(pinDir));
    await attempt(() => destroyCgroupTree(parentCgroup));
    if (nc) {
      const jsm = await jetstreamManager(nc);
      for (const name of [streamName(cluster), `KV_${statusBucket(cluster)}`])
        await jsm.streams.delete(name).catch(() => undefined);
      await attempt(() => nc!.close());
    }
    await attempt(() => api?.close());
    process.stdout.write(`[fullstack] timings ${JSON.stringify(timings)}\n`);
    if (errors.length) throw errors[0];
  });

  it('the agent runs the bpf dataplane on its own cgroup and creates the workload cgroups', async () => {
    const t0 = Date.now();
    const rev = await change([
      service(),
      workload('echo-v1', B1, 'node-b', { app: 'echo', version: 'v1' }),
      workload('echo-v2', B2, 'node-b', { app: 'echo', version: 'v2' }),
      workload('client-a', '127.0.2.1', NODE, { app: 'client' }),
      workload('client-b', '127.0.2.2', NODE, { app: 'client' }),
    ]);
    await waitApplied(rev);
    timings.firstApplyMs = Date.now() - t0;
    agentCgroupId = cgroupId(agentCgroup);
    const chosen = agent!.find((l) => l.dataplane === 'bpf' && String(l.msg).startsWith('dataplane: bpf'));
    expect(chosen).toMatchObject({ reason: 'MESH_DATAPLANE=bpf', pinDir, cgroup: agentCgroup });
    expect(Object.values(chosen!.attachments as Record<string, string>).every((a) => a === 'attached')).toBe(
      true,
    );
    expect(fs.readdirSync(path.join(pinDir, 'links')).sort()).toEqual([
      'connect4',
      'getpeername4',
      'recvmsg4',
      'sendmsg4',
      'sockops',
    ]);
    // Only this node's workloads get a cgroup; their ids are the keys of mesh_identities.
    expect(fs.readdirSync(agentCgroup).filter((n) => n.includes('.') && !n.startsWith('cgroup.'))).toEqual(
      expect.arrayContaining(['default.client-a', 'default.client-b']),
    );
    expect(fs.existsSync(path.join(agentCgroup, 'default.echo-v1'))).toBe(false);
    const ids = (await readMap('mesh_identities')).entries.map(
      ([k]) => codecs.identityKey.decode(k).cgroup_id,
    );
    expect(ids.sort()).toEqual(
      [
        cgroupId(path.join(agentCgroup, 'default.client-a')),
        cgroupId(path.join(agentCgroup, 'default.client-b')),
      ].sort(),
    );
    const status = await rawStatus();
    expect(status.dataplane).toMatchObject({ backend: 'bpf', pinDir, cgroup: agentCgroup, workloads: 2 });
  });

  it('a client process in a workload cgroup reaches both backends through the VIP', async () => {
    clientChild = spawn(
      process.execPath,
      [path.join(__dirname, '..', 'dataplane', 'fixtures', 'mesh-client.js')],
      {
        stdio: 'pipe',
      },
    );
    clientChild.stderr.on('data', (d) => process.stderr.write(`[client-a] ${d}`));
    await new Promise<void>((resolve, reject) => {
      clientChild!.once('error', reject);
      clientChild!.stdout.once('data', () => resolve());
    });
    // Before its first socket call: the programs judge a caller by its cgroup at call time.
    movePid(path.join(agentCgroup, 'default.client-a'), clientChild.pid!);
    client = new MeshClient(clientChild);
    const r = await tcp(200);
    expect(r.errors).toEqual({});
    expect(Object.keys(r.byName).sort()).toEqual(['v1', 'v2']);
    expect(r.peers).toEqual({ [`${VIP}:${vport}`]: 200 });
  });

  let splitRevision = 0;

  it('Route 90/10 through the API: 2,000 connections split within ±3 points', async () => {
    splitRevision = await change([route('echo-split', 'echo', { v1: 90, v2: 10 })]);
    timings.routeApplyMs = await waitApplied(splitRevision);
    const t0 = Date.now();
    const r = await tcp(2000);
    timings.connections2000Ms = Date.now() - t0;
    expect(r.errors).toEqual({});
    const v1 = percent(r.byName, 'v1');
    timings.split90 = Number(v1.toFixed(1));
    expect(Math.abs(v1 - 90)).toBeLessThanOrEqual(3);
  });

  it('the Route changed to 10/90 through the API: the split follows', async () => {
    const rev = await change([route('echo-split', 'echo', { v1: 10, v2: 90 })]);
    await waitApplied(rev);
    const r = await tcp(2000);
    expect(r.errors).toEqual({});
    const v1 = percent(r.byName, 'v1');
    timings.split10 = Number(v1.toFixed(1));
    expect(Math.abs(v1 - 10)).toBeLessThanOrEqual(3);
  });

  it('a rollback through the API to the 90/10 revision: the split follows the restored revision', async () => {
    const rev = await post('/v1/rollback', { toRevision: splitRevision, reason: 'canary went bad' });
    await waitApplied(rev);
    const r = await tcp(2000);
    expect(r.errors).toEqual({});
    const v1 = percent(r.byName, 'v1');
    timings.splitRolledBack = Number(v1.toFixed(1));
    expect(Math.abs(v1 - 90)).toBeLessThanOrEqual(3);
  });

  it('kill -9 the agent: the VIP keeps serving; restarted, it adopts the pins and writes nothing', async () => {
    const before = await readMap('mesh_services');
    const head = await api!.head();
    expect(before.meta?.appliedRevision).toBe(head);
    await agent!.kill9();
    const down = await tcp(500);
    expect(down.errors).toEqual({});
    expect(Object.keys(down.byName).sort()).toEqual(['v1', 'v2']);
    expect(Math.abs(percent(down.byName, 'v1') - 90)).toBeLessThanOrEqual(6);

    const t0 = Date.now();
    agent = await startAgent();
    const adopted = await agent.waitForLog(
      (l) => String(l.msg).startsWith('dataplane: bpf'),
      'dataplane chosen',
    );
    // Every cgroup link adopted in place (BPF_LINK_UPDATE); the sk_msg program is re-attached to the sockhash.
    expect(adopted.attachments).toEqual({
      mesh_connect4: 'adopted',
      mesh_sendmsg4: 'adopted',
      mesh_recvmsg4: 'adopted',
      mesh_getpeer4: 'adopted',
      mesh_sockops: 'adopted',
      mesh_sk_msg: 'attached',
    });
    const first = await agent.waitForLog(
      (l) => l.msg === 'applied' && l.firstSinceStart === true,
      'first apply',
    );
    timings.restartToFirstApplyMs = Date.now() - t0;
    expect(first).toMatchObject({ revision: head, ops: 0, batches: 0 });
    // Nothing written, not even the checkpoint: the meta still carries the old apply time.
    const after = await readMap('mesh_services');
    expect(after.meta).toEqual(before.meta);
    expect(after.entries.map(([k, v]) => toHex(k) + toHex(v)).sort()).toEqual(
      before.entries.map(([k, v]) => toHex(k) + toHex(v)).sort(),
    );
    await waitFor(
      async () => {
        const s = await rawStatus();
        return s?.dataplane?.startedAt &&
          Date.parse(s.dataplane.startedAt) >= t0 - 1000 &&
          s.state === 'READY'
          ? s
          : undefined;
      },
      { timeoutMs: 10_000, what: 'the restarted agent to report READY' },
    ).then((s) => expect(s).toMatchObject({ appliedRevision: head, ops: 0 }));
    const during = await tcp(200);
    expect(during.errors).toEqual({});
  });

  it('an entry deleted with bpftool is restored by the periodic reconcile, which counts the repair', async () => {
    const { entries } = await readMap('mesh_services');
    const key = entries.map(([k]) => k).find((k) => u32ToIpv4(codecs.serviceKey.decode(k).vip) === VIP);
    expect(key).toBeDefined();
    const hex = [...key!].map((b) => b.toString(16).padStart(2, '0'));
    const repairsBefore = (await rawStatus()).dataplane.repairs as number;
    await run('bpftool', [
      'map',
      'delete',
      'pinned',
      path.join(pinDir, 'mesh_services'),
      'key',
      'hex',
      ...hex,
    ]);
    const t0 = Date.now();
    const broken = await tcp(5);
    expect(broken.errors).toEqual({ ECONNREFUSED: 5 }); // the VIP has no service entry now

    const log = await agent!.waitForLog((l) => l.msg === 'full pass repaired drift', 'a repair', 10_000);
    timings.repairMs = Date.now() - t0;
    expect(log).toMatchObject({ repairs: 1 });
    expect(log.totalRepairs).toBeGreaterThanOrEqual(1);
    await waitFor(async () => (await rawStatus())?.dataplane?.repairs >= repairsBefore + 1, {
      timeoutMs: 5_000,
      what: 'the repair in the status value',
    });
    expect((await tcp(100)).errors).toEqual({});
  });

  it('a workload cgroup removed by hand is re-created and its new id replaces the old identity', async () => {
    const dir = path.join(agentCgroup, 'default.client-b');
    const old = cgroupId(dir);
    fs.rmdirSync(dir);
    const fresh = await waitFor(
      async () => {
        if (!fs.existsSync(dir)) return undefined;
        const id = cgroupId(dir);
        const ids = (await readMap('mesh_identities')).entries.map(
          ([k]) => codecs.identityKey.decode(k).cgroup_id,
        );
        return ids.includes(id) && !ids.includes(old) ? id : undefined;
      },
      { timeoutMs: 10_000, what: 'the re-created cgroup in mesh_identities' },
    );
    expect(fresh).not.toBe(old);
    expect(agent!.find((l) => l.msg === 'workload cgroups changed; refreshing identities')).toBeDefined();
  });

  it('the Service deleted through the API: the VIP no longer reaches a backend', async () => {
    const rev = await change(
      [],
      [
        { kind: 'Route', name: 'echo-split' },
        { kind: 'Service', name: 'echo' },
      ],
      'retire echo',
    );
    await waitApplied(rev);
    const r = await tcp(20);
    expect(r.byName).toEqual({});
    expect(r.errors).toEqual({ ECONNREFUSED: 20 });
  });

  const emptied = (dir: string) =>
    waitFor(() => fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8') === '', {
      timeoutMs: 5_000,
      what: `${dir} to be empty`,
    });

  it('SIGTERM leaves pins and links in place; over a re-created cgroup a new agent attaches afresh', async () => {
    await agent!.stop();
    expect(agent!.child.exitCode).toBe(0);
    expect(agent!.find((l) => String(l.msg).startsWith('maps and links stay pinned'))).toBeDefined();
    expect(fs.readdirSync(path.join(pinDir, 'links'))).toHaveLength(5);

    // The agent's cgroup removed and created again under the same path: the pinned links
    // point at a dead cgroup (the kernel detached them). They are replaced, not adopted.
    clientChild!.kill('SIGKILL');
    await emptied(path.join(agentCgroup, 'default.client-a'));
    await destroyCgroupTree(agentCgroup);
    agent = await startAgent();
    const chosen = await agent.waitForLog(
      (l) => String(l.msg).startsWith('dataplane: bpf'),
      'dataplane chosen',
    );
    expect(Object.values(chosen.attachments as Record<string, string>)).toEqual(Array(6).fill('attached'));
    agentCgroupId = cgroupId(agentCgroup);
    const dir = path.join(agentCgroup, 'default.client-a');
    await waitFor(
      async () =>
        fs.existsSync(dir) &&
        (await readMap('mesh_identities')).entries.some(
          ([k]) => codecs.identityKey.decode(k).cgroup_id === cgroupId(dir),
        ),
      { timeoutMs: 10_000, what: 'the new cgroups in mesh_identities' },
    );
    await agent.stop();
  });

  it('MESH_TEARDOWN=1 detaches and unpins everything and removes the empty cgroups, killing nothing', async () => {
    // A process still in a workload cgroup: teardown removes the pins but never kills it.
    const busyDir = path.join(agentCgroup, 'default.client-a');
    const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
    movePid(busyDir, sleeper.pid!);
    try {
      const busy = await launchAgent({ ...agentEnv(), MESH_TEARDOWN: '1' }, parentCgroup);
      agents.push(busy);
      expect(await busy.exited()).toBe(3);
      expect(fs.existsSync(pinDir)).toBe(false);
      expect(busy.find((l) => l.msg === 'teardown done')).toMatchObject({
        pins: 'removed',
        cgroupsLeft: [{ path: busyDir, reason: 'processes still run in it' }],
      });
      expect(sleeper.exitCode).toBeNull();
    } finally {
      sleeper.kill('SIGKILL');
    }
    await emptied(busyDir);

    const clean = await launchAgent({ ...agentEnv(), MESH_TEARDOWN: '1' }, parentCgroup);
    agents.push(clean);
    expect(await clean.exited()).toBe(0);
    expect(fs.existsSync(agentCgroup)).toBe(false);
    expect(clean.find((l) => l.msg === 'teardown done')).toMatchObject({ pins: 'absent', cgroupsLeft: [] });
    // No link of this suite is left attached anywhere (bpftool sees every link in the kernel).
    const { stdout } = await run('bpftool', ['link', 'show', '--json']);
    const links = JSON.parse(stdout) as Array<{ cgroup_id?: number }>;
    expect(agentCgroupId).not.toBe(0n);
    expect(links.filter((l) => BigInt(l.cgroup_id ?? 0) === agentCgroupId)).toEqual([]);
  });
});
