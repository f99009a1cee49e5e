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
import {
  CLIENT_ADDR,
  latencyCases,
  MESHED_SERVER,
  PLAIN_SERVER,
  VIP_MESHED,
  VIP_PLAIN,
} from './dataplane/cases';
import { Cleanup, sweepStale } from './dataplane/cleanup';
import { bigMesh, type FullSyncRun, runFullSync } from './dataplane/full-sync';
import { startHaproxy } from './dataplane/haproxy';
import { type CaseResult, describeCase, pairedRatio, runLatency } from './dataplane/latency';
import { mapOpsSummary, runMapOpsPhase } from './dataplane/map-ops';
import { BenchSpace, LocalAgent, NAMESPACE, NODE, service, workload } from './dataplane/mesh';
import { buildNative, RrServer, startRr } from './dataplane/procs';
import { findings, metricsOf, TARGETS } from './dataplane/report';
import {
  type BenchReport,
  closeDetails,
  formatMs,
  machineInfo,
  nowMs,
  parseArgs,
  progress,
  round,
  writeAndPrint,
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

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), DEFAULTS);
  const startedAt = new Date();
  const t0 = nowMs();
  const cleanup = new Cleanup(args.limit * 1000);
  let exitCode = 0;
  let report: BenchReport | undefined;
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
    const cases = latencyCases({ meshClient, lbClient, plainClient, plainSrv, meshedSrv, haproxy, vport });
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

    const metrics = metricsOf(R, byBatch, args.mapBatch, runs);
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
    };
    closeDetails(metrics, details, findings);
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
    writeAndPrint(
      report,
      `dataplane on ${report.machine.cpuModel} x${report.machine.cores}, kernel ${os.release()}`,
    );
  }
  process.exitCode = exitCode;
}

function leftovers(space: BenchSpace): string[] {
  return [space.root, space.pinRoot].filter((p) => fs.existsSync(p));
}

if (require.main === module) void main();
