/**
 * `npm run bench -- dataplane [--option=value ...]`
 *
 * Measures the eBPF data plane on this machine's kernel and writes
 * bench/results/dataplane.json:
 *
 *  1. latency: TCP request/response round trips (64-byte request, 64-byte echo) by a C
 *     client (bench/dataplane/rr.c) that runs in a cgroup and reports its own samples,
 *     against a C echo server, on a NEW connection per request (socket + connect + request
 *     + reply: where connect4 runs; the main keys) and on a REUSED connection:
 *       vip             client in a workload cgroup below the bench's mesh cgroup (every
 *                       program attached) -> the Service VIP, translated by connect4
 *       direct          client in a plain cgroup (no programs) -> the backend 127.0.1.x
 *       vip_lb_only     as vip, from a cgroup with only the socket-LB programs attached
 *                       (connect4/sendmsg4/recvmsg4/getpeername4; no sockops, no sk_msg)
 *       direct_in_mesh  the meshed client -> the backend address (programs run, no VIP)
 *       proxy           plain client -> HAProxy (mode tcp, 127.0.0.x) -> the backend
 *       proxy2          plain client -> HAProxy -> HAProxy -> the backend (two sidecars)
 *       sockmap         meshed client -> VIP of a MESHED echo server (both ends in the
 *                       sockhash, sk_msg splices), reused connection; compared with
 *                       direct reused (both ends in the plain cgroup, no programs)
 *     All cases interleaved round by round; every slice checks that the intended server
 *     accepted the connections and that getpeername() shows the VIP. Slices during which
 *     the processes on the path waited for a CPU far more than usual (other work on the
 *     shared machine, /proc/<pid>/schedstat) are run again (dataplane/latency.ts).
 *  2. map ops: batch updates of N mesh_slots entries through BpfMapBackend (and the bare
 *     addon call) vs a C program linked to libbpf (bench/dataplane/map-floor.c, built
 *     here with cc) against the same pinned map, interleaved.
 *  3. full sync: 10k Services x 3 backends from empty maps to the checkpoint through
 *     compile + Reconciler + BpfMapBackend.
 *
 * Safety (DESIGN.md): programs are attached only to a cgroup this run creates below its
 * own; every address is in 127.0.0.0/8; cgroups, pins, links, HAProxy and the servers are
 * removed at the end, also on failure, Ctrl-C and the global time limit (--limit seconds).
 */
import fs from 'node:fs';
import os from 'node:os';
import { bpfAvailable, loadAddon } from '@meshplane/dataplane';
import { Cleanup, sweepStale } from './dataplane/cleanup';
import { bigMesh, type FullSyncRun, runFullSync } from './dataplane/full-sync';
import { startHaproxy } from './dataplane/haproxy';
import {
  type CaseResult,
  describeCase,
  type LatencyCase,
  p50,
  pairedRatio,
  runLatency,
} from './dataplane/latency';
import { type MapOpsResult, mapOpsSummary, runMapOpsPhase } from './dataplane/map-ops';
import { BenchSpace, LocalAgent, NAMESPACE, NODE, service, workload } from './dataplane/mesh';
import { buildNative, RrServer, startRr } from './dataplane/procs';
import {
  formatMs,
  formatTable,
  machineInfo,
  meetsTarget,
  nowMs,
  parseArgs,
  progress,
  round,
  type Target,
  writeResults,
} from './lib';

const DEFAULTS = {
  /** Latency rounds; each runs every case once. */
  rounds: 10,
  /** Timed samples per slice, new-connection cases. */
  newSamples: 500,
  /** Timed samples per slice, reused-connection cases. */
  reusedSamples: 1000,
  /** Untimed requests before each slice. */
  warmup: 50,
  /** A slice whose p50 is above this many times the case's best slice p50 was contended (other load). */
  contendedAbove: 1.25,
  /** Passes re-running contended slices (a re-run replaces a slice when its p50 is lower). */
  retries: 5,
  /** Time budget for those re-runs, seconds. */
  rerunBudgetS: 90,
  /** Request (and echo) size in bytes. */
  size: 64,
  /** The headline batch size (the Reconciler's). */
  mapBatch: 1000,
  mapReps: 50,
  mapRounds: 7,
  syncServices: 10_000,
  syncBackends: 3,
  syncReps: 5,
  /** Global time limit in seconds: past it the bench cleans up and exits 124. */
  limit: 300,
  /** Run only part 2 (map ops) and print it; writes no results file (a partial run). */
  mapOpsOnly: false,
};

const TARGETS: Record<string, Target> = {
  vip_vs_direct_p50: { op: '<=', threshold: 1.05 },
  vip_vs_proxy_p50: { op: '<=', threshold: 0.6 },
  batch_vs_c_floor: { op: '>=', threshold: 0.8 },
};

const PLAIN_SERVER = '127.0.1.201';
const MESHED_SERVER = '127.0.1.202';
const CLIENT_ADDR = '127.0.1.203';
const VIP_PLAIN = '127.100.201.1';
const VIP_MESHED = '127.100.201.2';

function findings(m: Record<string, number>, d: Record<string, unknown>): string[] {
  const out: string[] = [];
  const us = (x: number | undefined) => `${x} us`;
  const d3 = (a: number | undefined, b: number | undefined) => round(a! - b!, 3);
  out.push(
    `new connection: VIP ${us(m.vip_p50_us)} vs direct ${us(m.direct_p50_us)} (x${m.vip_vs_direct_p50}): the mesh adds ` +
      `${d3(m.vip_p50_us, m.direct_p50_us)} us. With the socket-LB programs alone (connect4 & co., no sockops/sk_msg) ` +
      `the VIP costs ${us(m.vip_lb_only_p50_us)} (x${m.vip_lb_only_vs_direct_p50}, +${d3(m.vip_lb_only_p50_us, m.direct_p50_us)} us); ` +
      `with sockops too: ${d3(m.vip_p50_us, m.vip_lb_only_p50_us)} us more (sockops looks the peer up in ` +
      'mesh_listeners; this backend is not a meshed listener, so the socket stays out of the sockhash and sk_msg ' +
      `never runs). A meshed client dialling the backend address directly (no VIP): ${us(m.direct_in_mesh_p50_us)}.`,
  );
  out.push(
    `reused connection: VIP ${us(m.vip_reused_p50_us)} vs direct ${us(m.direct_reused_p50_us)} ` +
      `(x${m.vip_vs_direct_reused_p50}), LB programs only ${us(m.vip_lb_only_reused_p50_us)}; no program runs on ` +
      'this path (connect4 ran once; the socket is not in the sockhash, the backend not being meshed).',
  );
  out.push(
    `vs the HAProxy sidecar stand-in: new connection ${us(m.proxy_p50_us)} (VIP/proxy ${m.vip_vs_proxy_p50}), reused ` +
      `${us(m.proxy_reused_p50_us)} (${m.vip_vs_proxy_reused_p50}); two proxy hops as in a sidecar mesh: ` +
      `${us(m.proxy2_p50_us)} / ${us(m.proxy2_reused_p50_us)} (VIP/two-hop ${m.vip_vs_proxy2_p50}).`,
  );
  const sock = d.sockmap_check as { spliced: boolean; bytes_acked: number; bytes_sent: number } | undefined;
  out.push(
    `sockmap: meshed client -> meshed server, reused connection ${us(m.sockmap_p50_us)} vs the same without programs ` +
      `${us(m.sockmap_plain_p50_us)} (x${m.sockmap_vs_plain_p50}; Kmesh reports about 0.85); ` +
      (sock?.spliced
        ? `spliced: the client socket's TCP acked ${sock.bytes_acked} of ${sock.bytes_sent} bytes sent.`
        : `NOT spliced: TCP acked ${sock?.bytes_acked} of ${sock?.bytes_sent} bytes.`),
  );
  const mo = d.map_ops as { by_batch: MapOpsResult[] } | undefined;
  if (mo)
    out.push(
      'batch updates of mesh_slots, entries/s (reconciler op / BpfMapBackend.update on byte entries / bare addon / ' +
        'C floor): ' +
        mo.by_batch
          .map(
            (r) =>
              `N=${r.batch}: ${Math.round(r.per_s.backend)} / ${Math.round(r.per_s.entries)} / ` +
              `${Math.round(r.per_s.addon)} / ${Math.round(r.per_s.c_floor)}`,
          )
          .join('; '),
    );
  const head = mo?.by_batch.find((r) => r.batch === m.map_batch);
  if (head) {
    const us = (perS: number) => round((head.batch * 1e6) / perS, 4);
    const [b, e, a, c] = [
      us(head.per_s.backend),
      us(head.per_s.entries),
      us(head.per_s.addon),
      us(head.per_s.c_floor),
    ];
    const perEntry = (x: number) => Math.round(((x - a) * 1000) / head.batch);
    out.push(
      `at N=${head.batch} a batch takes ${b} us as the reconciler's op (byte-string keys/values written straight into the ` +
        `map's reused buffers), ${e} us through BpfMapBackend.update on byte entries, ${a} us as a bare addon call ` +
        `and ${c} us from C (best rounds): the addon is at ${round(c / a, 3)} of the floor; the backend's own ` +
        `JavaScript costs ${perEntry(b)} ns per entry from byte strings, ${perEntry(e)} ns from bytes. All reps pooled: ` +
        `${head.batch_us.backend.p50} / ${head.batch_us.entries.p50} / ${head.batch_us.addon.p50} / ` +
        `${head.batch_us.c_floor.p50} us.`,
    );
  }
  const sync = d.full_sync as { runs: FullSyncRun[] } | undefined;
  const r0 = sync?.runs[0];
  if (r0)
    out.push(
      `full sync of ${r0.entries.mesh_services} services / ${r0.entries.mesh_slots} slots / ${r0.entries.mesh_backends} ` +
        `backends: ${m.full_sync_10k_ms} ms (p50 of ${sync!.runs.length}): compile ${m.full_sync_compile_ms} ms, plan + ` +
        `${r0.batches} batched writes (${r0.ops} entries) + checkpoint ${m.full_sync_apply_ms} ms. Runs: ` +
        `${sync!.runs.map((r) => `${Math.round(r.total_ms)} ms wall / ${Math.round(r.process_cpu_ms)} ms CPU`).join(', ')} ` +
        '(the first is a cold agent: JIT warm-up; wall above CPU is time spent waiting for a core).',
    );
  const lat = d.latency as
    | {
        cases: Record<
          string,
          { slice_p50_us: number[]; slices_rerun_as_contended: number; slices_still_contended: number }
        >;
      }
    | undefined;
  if (lat) {
    const cs = Object.values(lat.cases);
    const rerun = cs.reduce((a, c) => a + c.slices_rerun_as_contended, 0);
    const still = cs.reduce((a, c) => a + c.slices_still_contended, 0);
    const kept = cs.reduce((a, c) => a + c.slice_p50_us.length, 0);
    out.push(
      `contention from other work on the machine: ${rerun} latency slices were re-run (p50 more than ` +
        `${d.contended_above}x the case's best slice); ${still} of ${kept} kept slices are still above it` +
        (still > kept / 10
          ? ': the latency numbers of this run are NOT reliable, run again on a quieter machine.'
          : '.'),
    );
  }
  for (const [name, t] of Object.entries(TARGETS))
    if (m[name] !== undefined && !meetsTarget(m[name]!, t))
      out.push(`${name} MISS (${m[name]} vs ${t.op} ${t.threshold}).`);
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), DEFAULTS);
  const startedAt = new Date();
  const t0 = nowMs();
  const cleanup = new Cleanup(args.limit * 1000);
  let exitCode = 0;
  let report: Parameters<typeof writeResults>[0] | undefined;
  let space: BenchSpace | undefined;
  try {
    const ok = bpfAvailable();
    if (ok !== true) throw new Error(`the BPF data plane is unavailable here: ${ok}`);
    const machine = machineInfo('n/a (not used by this benchmark)');
    progress(
      t0,
      `dataplane bench on ${machine.cpuModel} x${machine.cores}, ${machine.platform}, load ${machine.loadAverageAtStart.join(' ')}`,
    );
    const swept = await sweepStale();
    if (swept.length) progress(t0, `removed leftovers of dead bench runs: ${swept.join(', ')}`);
    const tools = buildNative(cleanup);
    space = new BenchSpace(cleanup);
    if (args.mapOpsOnly) {
      const byBatch = await runMapOpsPhase(space, tools, args, (m) => progress(t0, m));
      process.stdout.write(`${JSON.stringify(mapOpsSummary(byBatch, args.mapBatch), null, 2)}\n`);
      return;
    }

    // ---- the mesh: programs on <bench>/mesh, a plain sibling without programs
    const meshCg = space.cgroup('mesh');
    const plainCg = space.cgroup('plain');
    const backend = await space.backend('mesh', meshCg);
    const lbOnlyCg = space.cgroup('lb-only');
    space.attachLbOnly(backend, lbOnlyCg);
    const clientCg = backend.workloadCgroup(NAMESPACE, 'client');
    const meshedSrvCg = backend.workloadCgroup(NAMESPACE, 'echo-meshed');
    progress(
      t0,
      `programs attached to ${meshCg} (${JSON.stringify(backend.attachments)}), maps in ${space.pinDir('mesh')}`,
    );

    const plainSrv = await RrServer.start(
      await startRr(tools, 'server', 'plain-server', plainCg, space.mount, cleanup),
      PLAIN_SERVER,
    );
    const meshedSrv = await RrServer.start(
      await startRr(tools, 'server', 'meshed-server', meshedSrvCg, space.mount, cleanup),
      MESHED_SERVER,
    );
    const meshClient = await startRr(tools, 'client', 'mesh-client', clientCg, space.mount, cleanup);
    const plainClient = await startRr(tools, 'client', 'plain-client', plainCg, space.mount, cleanup);
    const lbClient = await startRr(tools, 'client', 'lb-only-client', lbOnlyCg, space.mount, cleanup);
    const vport = 50_000 + (process.pid % 9_000);

    const agent = new LocalAgent(backend);
    await agent.apply([
      service('echo', VIP_PLAIN, [{ port: vport, protocol: 'TCP', targetPort: plainSrv.port }], {
        app: 'echo',
      }),
      service('echo-meshed', VIP_MESHED, [{ port: vport, protocol: 'TCP', targetPort: meshedSrv.port }], {
        app: 'echo-meshed',
      }),
      // The plain server is not meshed on this node: a backend on another node, as far as the maps go.
      workload('echo-plain', PLAIN_SERVER, 'other-node', { app: 'echo' }),
      workload('echo-meshed', MESHED_SERVER, NODE, { app: 'echo-meshed' }),
      workload('client', CLIENT_ADDR, NODE, { app: 'client' }),
    ]);
    agent.reconciler.stop();
    const haproxy = await startHaproxy(plainSrv, plainCg, process.pid, cleanup);
    // Its readiness probes open backend connections asynchronously: let them land before the
    // slices start counting accepted connections.
    await plainSrv.settle();
    progress(
      t0,
      `VIPs ${VIP_PLAIN}:${vport} -> ${PLAIN_SERVER}:${plainSrv.port} (plain cgroup), ${VIP_MESHED}:${vport} -> ` +
        `${MESHED_SERVER}:${meshedSrv.port} (meshed); ${haproxy.version} on ${haproxy.host}:${haproxy.sidecarPort} ` +
        `(two-hop ${haproxy.twoHopPort})`,
    );

    // ---- 1. latency
    const plainT = { host: plainSrv.host, port: plainSrv.port };
    const vipT = { host: VIP_PLAIN, port: vport };
    const srv = { server: plainSrv };
    const onPath = (...procs: Array<{ pid: number }>) => ({
      pids: [...procs.map((p) => p.pid), plainSrv.proc.pid],
    });
    const cases: LatencyCase[] = [];
    for (const mode of ['new', 'reused'] as const) {
      const sfx = mode === 'new' ? '' : '_reused';
      const peer = `${VIP_PLAIN}:${vport}`;
      cases.push(
        {
          name: `vip${sfx}`,
          client: meshClient,
          target: vipT,
          mode,
          ...srv,
          expectPeer: peer,
          ...onPath(meshClient),
        },
        {
          name: `vip_lb_only${sfx}`,
          client: lbClient,
          target: vipT,
          mode,
          ...srv,
          expectPeer: peer,
          ...onPath(lbClient),
        },
        { name: `direct${sfx}`, client: plainClient, target: plainT, mode, ...srv, ...onPath(plainClient) },
        {
          name: `direct_in_mesh${sfx}`,
          client: meshClient,
          target: plainT,
          mode,
          ...srv,
          ...onPath(meshClient),
        },
        {
          name: `proxy${sfx}`,
          client: plainClient,
          target: { host: haproxy.host, port: haproxy.sidecarPort },
          mode,
          ...srv,
          ...onPath(plainClient, haproxy),
        },
        {
          name: `proxy2${sfx}`,
          client: plainClient,
          target: { host: haproxy.host, port: haproxy.twoHopPort },
          mode,
          ...srv,
          ...onPath(plainClient, haproxy),
        },
      );
    }
    cases.push({
      name: 'sockmap_reused',
      client: meshClient,
      target: { host: VIP_MESHED, port: vport },
      mode: 'reused',
      server: meshedSrv,
      expectPeer: `${VIP_MESHED}:${vport}`,
      pids: [meshClient.pid, meshedSrv.proc.pid],
    });
    progress(t0, `latency: ${cases.length} cases x ${args.rounds} rounds, interleaved`);
    const lat = await runLatency(cases, args, (what) => progress(t0, `latency: ${what}`));
    const R = lat.results as Record<string, CaseResult>;
    for (const p of [meshClient, plainClient, lbClient, plainSrv.proc, meshedSrv.proc]) await p.kill();
    await haproxy.stop();
    const sockLast = R.sockmap_reused!.last;
    const sentBytes = args.size * (args.reusedSamples + args.warmup);
    const sockmapCheck = {
      spliced: sockLast.bytes_acked < sentBytes / 10,
      bytes_acked: sockLast.bytes_acked,
      bytes_sent: sentBytes,
      vip_reused_bytes_acked: R.vip_reused!.last.bytes_acked,
      note:
        'tcp_info of the client socket after its last slice: spliced bytes never enter TCP, so bytes_acked stays ' +
        'near 0 with sockmap; the VIP case (backend not meshed) goes through TCP',
    };
    if (!sockmapCheck.spliced)
      progress(t0, `WARNING: sockmap case was not spliced (${JSON.stringify(sockmapCheck)})`);

    // ---- 2. map ops
    const byBatch = await runMapOpsPhase(space, tools, args, (m) => progress(t0, m));
    const head = byBatch.find((r) => r.batch === args.mapBatch)!;

    // ---- 3. full sync
    const { state, buildMs } = bigMesh(args.syncServices, args.syncBackends);
    const runs: FullSyncRun[] = [];
    for (let rep = 0; rep < args.syncReps; rep++) {
      const r = await runFullSync(space, state, rep);
      runs.push(r);
      progress(
        t0,
        `full sync ${rep + 1}/${args.syncReps}: ${formatMs(r.total_ms)} (${JSON.stringify(r.entries)})`,
      );
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
    const syncMedian = runs.find((r) => r.total_ms === med(runs.map((x) => x.total_ms)))!;

    const P = (name: string) => round(p50(R[name]!), 4);
    const ratio = (a: number, b: number) => round(a / b, 3);
    const metrics: Record<string, number> = {
      vip_p50_us: P('vip'),
      direct_p50_us: P('direct'),
      proxy_p50_us: P('proxy'),
      vip_vs_direct_p50: ratio(P('vip'), P('direct')),
      vip_vs_proxy_p50: ratio(P('vip'), P('proxy')),
      vip_reused_p50_us: P('vip_reused'),
      direct_reused_p50_us: P('direct_reused'),
      proxy_reused_p50_us: P('proxy_reused'),
      vip_vs_direct_reused_p50: ratio(P('vip_reused'), P('direct_reused')),
      vip_vs_proxy_reused_p50: ratio(P('vip_reused'), P('proxy_reused')),
      direct_in_mesh_p50_us: P('direct_in_mesh'),
      direct_in_mesh_reused_p50_us: P('direct_in_mesh_reused'),
      vip_vs_direct_in_mesh_p50: ratio(P('vip'), P('direct_in_mesh')),
      vip_lb_only_p50_us: P('vip_lb_only'),
      vip_lb_only_reused_p50_us: P('vip_lb_only_reused'),
      vip_lb_only_vs_direct_p50: ratio(P('vip_lb_only'), P('direct')),
      proxy2_p50_us: P('proxy2'),
      proxy2_reused_p50_us: P('proxy2_reused'),
      vip_vs_proxy2_p50: ratio(P('vip'), P('proxy2')),
      sockmap_p50_us: P('sockmap_reused'),
      sockmap_plain_p50_us: P('direct_reused'),
      sockmap_vs_plain_p50: ratio(P('sockmap_reused'), P('direct_reused')),
      latency_slices_contended: Object.values(R).reduce((a, r) => a + r.contended, 0),
      latency_slices_rerun: Object.values(R).reduce((a, r) => a + r.reruns, 0),
      map_batch: args.mapBatch,
      map_ops_per_s_batch: head.per_s.backend,
      map_ops_per_s_entries: head.per_s.entries,
      map_ops_per_s_addon: head.per_s.addon,
      map_ops_per_s_c_floor: head.per_s.c_floor,
      batch_vs_c_floor: ratio(head.per_s.backend, head.per_s.c_floor),
      full_sync_10k_ms: syncMedian.total_ms,
      full_sync_compile_ms: syncMedian.compile_ms,
      full_sync_apply_ms: syncMedian.apply_ms,
      full_sync_10k_cpu_ms: round(med(runs.map((r) => r.process_cpu_ms)), 4),
    };
    const details: Record<string, unknown> = {
      latency: {
        note:
          'us per request/response (64 B each way) measured by the C client itself (CLOCK_MONOTONIC); new = socket() ' +
          'to reply received (RST close outside the timing); pooled over the kept slices of every round; paired = ' +
          'median over rounds of the ratio of the two slices p50s; contended slices (p50 above ' +
          `${args.contendedAbove}x the case's best slice) re-run up to ${args.retries} passes / ${args.rerunBudgetS} s`,
        elapsed_ms: lat.elapsedMs,
        machine_cpu_busy: round(lat.machineBusy, 3),
        paired_ratios: {
          vip_vs_direct: round(pairedRatio(R.vip!, R.direct!), 3),
          vip_vs_proxy: round(pairedRatio(R.vip!, R.proxy!), 3),
          vip_vs_direct_reused: round(pairedRatio(R.vip_reused!, R.direct_reused!), 3),
          sockmap_vs_plain: round(pairedRatio(R.sockmap_reused!, R.direct_reused!), 3),
        },
        cases: Object.fromEntries(Object.values(R).map((r) => [r.name, describeCase(r)])),
      },
      sockmap_check: sockmapCheck,
      contended_above: args.contendedAbove,
      map_ops: {
        note:
          'entries/s = N / p50 batch time of the best round (per_s) or of all reps pooled (per_s_pooled); every ' +
          'timed batch replaces N existing mesh_slots entries (BPF_ANY); ' +
          "backend = executeOp on a plan op of byte strings, the reconciler's write (BpfMapBackend.updateStrings: " +
          'checks + one concatenation and latin1 write per buffer into reused buffers + addon + syscall), entries = BpfMapBackend.update on byte entries (checks + ' +
          'packing into reused buffers + addon + syscall), addon = updateBatch on pre-packed ' +
          'buffers, c_floor = bench/dataplane/map-floor.c (libbpf bpf_map_update_batch), same pinned map, interleaved',
        by_batch: byBatch,
      },
      full_sync: {
        note:
          'from freshly pinned, empty maps: allocator + compile + Reconciler.apply (plan, batches of 1000, checkpoint); ' +
          'open_ms (object load + pin) and the MeshState build are not in total_ms',
        state_build_ms: round(buildMs, 4),
        runs,
      },
      load_average_at_end: os.loadavg().map((x) => round(x, 3)),
    };
    details.findings = findings(metrics, details);
    report = {
      benchmark: 'dataplane',
      metrics,
      targets: TARGETS,
      params: {
        ...args,
        node: NODE,
        kernel: os.release(),
        libbpf: loadAddon().libbpfVersion(),
        haproxy: haproxy.version,
        haproxy_config: haproxy.config,
        cc: tools.cc,
        client: 'bench/dataplane/rr.c (blocking sockets, TCP_NODELAY, close with SO_LINGER 0)',
        server: 'bench/dataplane/rr.c (epoll echo, one thread)',
        addresses: {
          vip: VIP_PLAIN,
          vip_meshed: VIP_MESHED,
          plain_server: PLAIN_SERVER,
          meshed_server: MESHED_SERVER,
          proxy: haproxy.host,
        },
        cgroups: {
          mesh: meshCg,
          plain: plainCg,
          lb_only: lbOnlyCg,
          client: clientCg,
          meshed_server: meshedSrvCg,
        },
      },
      details,
      machine,
      startedAt,
      durationMs: 0,
    };
  } catch (err) {
    process.stderr.write(`dataplane bench failed: ${(err as Error).stack ?? String(err)}\n`);
    exitCode = 1;
  } finally {
    const errors = await cleanup.run();
    for (const e of errors) process.stderr.write(`cleanup: ${e}\n`);
    if (errors.length) exitCode = 1;
    if (space) {
      const left = leftovers(space);
      if (left.length) {
        process.stderr.write(`cleanup left: ${left.join(', ')}\n`);
        exitCode = 1;
      }
    }
    // Also for the early return of --map-ops-only.
    process.exitCode = exitCode;
  }
  if (report && exitCode === 0) {
    report.durationMs = nowMs() - t0;
    (report.details as Record<string, unknown>).cleanup = 'cgroups, pins, links, HAProxy and servers removed';
    const file = writeResults(report);
    process.stdout.write(
      `\ndataplane on ${report.machine.cpuModel} x${report.machine.cores}, kernel ${os.release()}\n\n`,
    );
    process.stdout.write(`${formatTable(report.metrics, report.targets)}\n\n`);
    for (const f of (report.details as { findings: string[] }).findings) process.stdout.write(`- ${f}\n`);
    process.stdout.write(`\nwritten ${file} in ${formatMs(report.durationMs)}\n`);
  }
  process.exitCode = exitCode;
}

function leftovers(space: BenchSpace): string[] {
  return [space.root, space.pinRoot].filter((p) => fs.existsSync(p));
}

if (require.main === module) void main();
