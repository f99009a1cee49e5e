/**
 * `npm run bench -- propagation [--option=value ...]`
 *
 * Commit-to-applied latency of single-resource changes, from EventStore.append (no API) through the
 * relay (a worker thread of its own: in production it is a process of its own) and the shared NATS
 * JetStream to N real agents (startAgent, MemoryMapBackend),
 * for N = 1, 10, 100 and meshes of 1k and 10k Services (3 Workloads each, spread over 100 node
 * names), and, in the same run, the floor of the fan-out: a plain JetStream publish of a message of
 * the same size to 100 stream readers, one floor message after each measured change (interleaved,
 * so that both sides of `p99_ratio` see the same machine). Writes bench/results/propagation.json.
 *
 * Each mesh size gets its own database and a random cluster name (its own stream and status
 * bucket on the shared NATS, deleted at the end). The agents run in worker threads (`--workers`,
 * round-robin; each its own heap), each agent with its own NATS connection, as on real nodes.
 * Changes are committed one at a time; each waits until every agent applied it (the agent's
 * in-process hook AgentHandle.waitForRevision: the reconciler wrote the maps and the checkpoint),
 * then the next one is committed after `--gap-ms`. The first `--warmup-changes` after each fleet
 * (re)start are not measured (they pay for the start-up's garbage; reported apart).
 *
 * Stages of each change, all on one monotonic clock: append() called -> committed (append
 * resolved) -> published (a core subscriber on the revision subject in the main thread got it) ->
 * first agent applied -> last agent applied. `bootstrap_10k_ms`: one agent, empty maps, to the
 * head of the 10k mesh through GET /v1/snapshot of a real API (its production path).
 *
 * CPU time per change (`cpu_ms_per_change` of each combination, and per floor message): this
 * process's CPU (agents, relay, commits; every thread) and nats-server's and postgres's from
 * /proc, over the measured changes. Latency on 2 cores mixes work and waiting for a core; CPU
 * time shows the work, and which process does it. Per change and worker thread, its own
 * schedstat tells the two apart (`thread_run_ms`, `thread_wait_ms`, and in `slowest_changes`).
 *
 * After the headline, `--profile-changes` more changes run with worker 0 under the V8 profiler
 * (`details…agent_profile`): its time per agent and change by group, by function and by source
 * line (TypeScript lines, through the build's source maps). MESH_BENCH_PROFILE_DIR=<dir> also
 * keeps the raw .cpuprofile.
 */
import os from 'node:os';
import { connectNats } from '@meshplane/messaging';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  formatMs,
  formatTable,
  machineInfo,
  nowMs,
  parseArgs,
  printMachine,
  progress,
  round,
  serverVersion,
  TempDatabases,
  writeResults,
} from './lib';
import { DEFAULTS, NATS_URL, targetsOf } from './propagation/args';
import { WORKLOADS_PER_SERVICE } from './propagation/mesh';
import {
  combinationTable,
  type ExtraRunResult,
  findings,
  mergeExtraRun,
  metricsOf,
} from './propagation/report';
import { runSize, type SizeResult } from './propagation/run-size';
import { assertLoopback } from './propagation/support';
import { runTracingOverhead } from './propagation/tracing';

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), DEFAULTS);
  const startedAt = new Date();
  const t0 = nowMs();
  const dbs = new TempDatabases();
  let nc: NatsConnection | undefined;
  let exitCode = 0;
  try {
    assertLoopback(NATS_URL, 'NATS_URL');
    assertLoopback(process.env.DATABASE_URL || 'postgres://127.0.0.1:5432/x', 'DATABASE_URL');
    const probe = await dbs.create('bench_prop_probe');
    const machine = machineInfo(await serverVersion(probe.url));
    await dbs.drop(probe);
    progress(t0, `propagation bench on ${printMachine(machine)}; NATS ${NATS_URL}`);
    nc = await connectNats(NATS_URL, { name: 'bench-propagation', firstConnectTimeoutMs: 10_000 });
    const jsm = await jetstreamManager(nc);
    const sizes: SizeResult[] = [];
    const list = [...new Set([args.small, args.large])].sort((a, b) => a - b);
    for (const services of list)
      sizes.push(await runSize(services, args, dbs, nc, jsm, t0, services === Math.max(...list)));

    const metrics = metricsOf(sizes);
    const table = combinationTable(sizes);
    const details: Record<string, unknown> = {
      combination_table: table.split('\n'),
      sizes,
      load_average_at_end: os.loadavg().map((x) => round(x, 3)),
    };

    // Further runs, after the main measurement, on the same machine state. Each returns metric
    // keys (merged into `metrics`; a key that already exists is an error) and its details (kept
    // under details[name]).
    const extraRuns: Array<[string, () => Promise<ExtraRunResult>]> = [];
    if (args.tracing) extraRuns.push(['tracing', () => runTracingOverhead({ dbs, nc: nc!, jsm, t0 })]);
    for (const [name, run] of extraRuns) mergeExtraRun(metrics, details, name, await run());

    details.findings = findings(metrics, sizes);
    const durationMs = nowMs() - t0;
    const file = writeResults({
      benchmark: 'propagation',
      metrics,
      targets: targetsOf(metrics),
      params: {
        ...args,
        nats_url: NATS_URL,
        latency:
          'p50_ms / p99_ms: from append() resolved (committed) to the last agent having applied the revision ' +
          '(AgentHandle.waitForRevision, an in-process hook: maps written and checkpoint stored), single-resource ' +
          `changes (one Workload weight 1..4), one at a time, ${args.gapMs} ms apart, after ${args.warmupChanges} ` +
          'warm-up changes per combination (reported apart as its `warmup`); headline = most agents x largest mesh',
        floor:
          'a plain JetStream publish (js.publish, msgID, the same headers and payload bytes as a measured revision ' +
          'message) to a stream configured like the revision stream, received by the same number of ' +
          'readers (each its own NATS connection and push consumer, followStream() like the agents) in the same worker threads, while the ' +
          'agents run; one floor message after each measured change (after its gap), so the floor and the changes see the same ' +
          'machine; from the publish call to the last consumer having it',
        agents:
          'startAgent (services/agent) with a MemoryMapBackend each, own NATS connection, bootstrapped from the current ' +
          'state read from the database once per worker (what GET /v1/snapshot serves); round-robin over worker threads',
        relay:
          'startRelay in a worker thread of its own (LISTEN/NOTIFY wake-up, poll 1 s fallback), logs JSON-encoded and counted',
        commits: 'EventStore.append with the API validate hook (validateChangeSet), no API',
        mesh: `Services with ${WORKLOADS_PER_SERVICE} Workloads each (weight 1), workloads spread over ${args.nodes} node names; VIPs 127.100.x.y, workloads 127.1-3.x.y`,
        bootstrap:
          'bootstrap_10k_ms: one agent (main thread, own NATS connection, empty MemoryMapBackend) from startAgent() to ' +
          'the head applied (SYNCED), via GET /v1/snapshot of a real API on the same database (MESH_API_URL set, as in ' +
          'production); stream_replay: the same without an API, replaying the stream from revision 1',
      },
      details,
      machine,
      startedAt,
      durationMs,
    });
    process.stdout.write(
      `\npropagation on ${printMachine(machine)}\n\n${formatTable(metrics, targetsOf(metrics))}\n\n${table}\n\n`,
    );
    for (const f of details.findings as string[]) process.stdout.write(`- ${f}\n`);
    process.stdout.write(`\nwritten ${file} in ${formatMs(durationMs)}\n`);
  } catch (err) {
    process.stderr.write(`propagation bench failed: ${(err as Error).stack ?? String(err)}\n`);
    exitCode = 1;
  } finally {
    await nc?.close().catch(() => undefined);
    await dbs.dropAll();
  }
  process.exitCode = exitCode;
}

if (require.main === module) void main();
