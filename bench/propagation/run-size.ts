/**
 * One mesh size of the propagation benchmark: its own database and cluster (stream, status
 * bucket), the seed, the relay, the bootstrap measurements, then 1, 10 and N agents committing
 * single-resource changes one at a time, each followed by a floor message (headline size).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { MemoryMapBackend } from '@meshplane/dataplane';
import { EventStore, migrateToLatest } from '@meshplane/event-store';
import { statusBucket, streamName } from '@meshplane/messaging';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { type AgentConfig, type Logger, startAgent } from '../../services/agent/src';
import { createApiApp } from '../../services/api/src/app';
import type { RelayConfig } from '../../services/relay/src';
import {
  formatMs,
  nowMs,
  processCpuSince,
  progress,
  round,
  roundSummary,
  sampleProcessCpu,
  stealMs,
  summarize,
  type TempDatabases,
  untilQuiet,
} from '../lib';
import { ACTOR, type Args, NATS_URL, REASON } from './args';
import { Fleet } from './fleet';
import { type FloorResult, FloorSession } from './floor';
import { type GcStats, GcWatch, roundedHeap, settleHeap } from './gc';
import { seedChangeSets, WeightChanges, WORKLOADS_PER_SERVICE } from './mesh';
import { RelayThread } from './relay-thread';
import {
  AGENT_MARKS,
  type Combination,
  MAIN_THREAD,
  profilePerAgentChange,
  RELAY_THREAD,
  type Sample,
  stageSummaries,
  warmupSummary,
} from './stats';
import { LogCounter, Observer, sleep, traceparent, validate } from './support';

/** One agent from empty maps (a new MemoryMapBackend) to `head`, in this thread, with its own NATS connection. */
export async function bootstrapOnce(
  cluster: string,
  node: string,
  head: number,
  args: Args,
  log: Logger,
  api?: { url: string; token: string },
): Promise<number> {
  const config: AgentConfig = {
    node,
    cluster,
    natsUrl: NATS_URL,
    dataplane: 'memory',
    heartbeatMs: args.heartbeatMs,
    statusIntervalMs: args.statusIntervalMs,
    fullPassMs: 30 * 60_000,
    recentApplies: 64,
    agentVersion: 'bench',
    ...(api ? { apiUrl: api.url, token: api.token } : {}),
  };
  const t0 = nowMs();
  const backend = await MemoryMapBackend.open();
  try {
    const h = await startAgent(config, { backend, log, retryMs: 200 });
    try {
      await h.waitForRevision(head, 300_000);
      return nowMs() - t0;
    } finally {
      await h.stop();
    }
  } finally {
    await backend.close(); // a backend passed in is not closed by stop()
  }
}

export interface SizeResult {
  services: number;
  resources: number;
  seedMs: number;
  seedRevisions: number;
  bootstrap?: { snapshot_http_ms: number; stream_replay_ms: number };
  combinations: Combination[];
  floor?: FloorResult;
  agent_profile?: ReturnType<typeof profilePerAgentChange>;
  relay: Record<string, unknown>;
  logs: Record<string, unknown>;
  capped?: string;
}

export async function runSize(
  services: number,
  args: Args,
  dbs: TempDatabases,
  nc: NatsConnection,
  jsm: JetStreamManager,
  t0: number,
  headline: boolean,
): Promise<SizeResult> {
  const cluster = `bp-${randomBytes(4).toString('hex')}-${Math.round(services / 1000)}k`;
  const db = await dbs.create(`bench_prop_${services}`);
  const agentLog = new LogCounter();
  const mainGc = new GcWatch();
  let store: EventStore | undefined;
  let relay: RelayThread | undefined;
  let observer: Observer | undefined;
  let fleet: Fleet | undefined;
  try {
    await migrateToLatest(db.url);
    store = await EventStore.open({ databaseUrl: db.url, cluster, applicationName: 'bench-prop-commit' });
    const ts = nowMs();
    let head = 0;
    const chunks = seedChangeSets(services, args.nodes, args.seedChunk);
    for (const cs of chunks) {
      const r = await store.append(cs, { actor: 'bench-seed', reason: 'bench: seed the mesh', validate });
      if (r.status !== 'appended') throw new Error(`seed append returned ${r.status}`);
      head = r.changeSet.revision;
    }
    const seedMs = nowMs() - ts;
    const resources = services * (1 + WORKLOADS_PER_SERVICE);
    progress(
      t0,
      `[${cluster}] seeded ${services} services + ${services * WORKLOADS_PER_SERVICE} workloads in ${head} revisions (${formatMs(seedMs)})`,
    );

    const relayConfig: Omit<RelayConfig, 'logSink'> = {
      cluster,
      databaseUrl: db.url,
      natsUrl: NATS_URL,
      pollMs: 1000,
      lockRetryMs: 500,
      sessionCheckMs: 1000,
      batchSize: 500,
      publishWindow: 64,
      stepDownAfterMs: 30_000,
      logLevel: 'info',
      instanceId: `bench-relay-${process.pid}`,
    };
    // A thread of its own, as the relay is a process of its own in production (relay-worker.ts).
    relay = new RelayThread(relayConfig);
    await relay.published(head, 120_000);
    observer = new Observer(nc, cluster);
    progress(t0, `[${cluster}] relay published revisions 1..${head}`);

    let bootstrap: SizeResult['bootstrap'];
    if (args.bootstrap) {
      const token = `bench-prop-${randomUUID()}`;
      const app = await createApiApp({
        databaseUrl: db.url,
        port: 0,
        host: '127.0.0.1',
        cluster,
        bootstrapToken: token,
        natsUrl: NATS_URL,
        logSink: () => undefined,
      });
      try {
        await app.listen(0, '127.0.0.1');
        const url = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
        const httpMs = await bootstrapOnce(cluster, 'bootstrap-snapshot', head, args, agentLog.logger, {
          url,
          token,
        });
        const streamMs = await bootstrapOnce(cluster, 'bootstrap-stream', head, args, agentLog.logger);
        bootstrap = { snapshot_http_ms: round(httpMs, 4), stream_replay_ms: round(streamMs, 4) };
        progress(
          t0,
          `[${cluster}] bootstrap, empty to head ${head}: via GET /v1/snapshot ${formatMs(httpMs)}, by stream replay ${formatMs(streamMs)}`,
        );
      } finally {
        await app.close().catch(() => undefined);
      }
    }

    fleet = new Fleet(
      args.workers,
      {
        cluster,
        natsUrl: NATS_URL,
        databaseUrl: db.url,
        heartbeatMs: args.heartbeatMs,
        statusIntervalMs: args.statusIntervalMs,
      },
      args.workerHeapMb,
    );
    const changes = new WeightChanges(services, args.nodes, args.seed + services);
    const theFleet = fleet;
    const theObserver = observer;
    const theStore = store;
    /** Commits one change, then waits until every agent applied it; every stage on one clock. */
    const commitAndWait = async (): Promise<Sample> => {
      await sleep(args.gapMs);
      const steal0 = stealMs();
      const call = nowMs();
      const r = await theStore.append([changes.next()], {
        actor: ACTOR,
        reason: REASON,
        requestId: randomUUID(),
        traceContext: traceparent(),
        validate,
      });
      const commit = nowMs();
      if (r.status !== 'appended') throw new Error(`append returned ${r.status}`);
      const revision = r.changeSet.revision;
      const applied = await theFleet.waitAll(revision, 60_000);
      const steal = stealMs() - steal0;
      const mainSeen = await theObserver.when(revision);
      const seen = await theFleet.seenBy(revision, 1_000);
      const sched = theFleet.takeSched(revision);
      const times = [...applied.at.values()];
      const seenTimes = [...seen.values()];
      const threads = Array.from({ length: theFleet.workerCount }, (_, w) => {
        const mine = [...applied.at.entries()]
          .filter(([node]) => theFleet.workerOf(node) === w)
          .map(([, at]) => at);
        const got = seen.get(w);
        return mine.length && got !== undefined
          ? { spanMs: Math.max(...mine) - got, agents: mine.length, ...sched.get(w) }
          : undefined;
      }).filter((t) => t !== undefined);
      const firstSeen = Math.min(...seenTimes, mainSeen ?? Number.POSITIVE_INFINITY);
      return {
        revision,
        call,
        commit,
        published: Number.isFinite(firstSeen) ? firstSeen : undefined,
        receivedAllThreads: seen.size >= theFleet.activeWorkers ? Math.max(...seenTimes) : undefined,
        first: Math.min(...times),
        all: Math.max(...times),
        threads,
        applyMs: applied.applyMs,
        stealMs: steal,
      };
    };
    const combinations: Combination[] = [];
    let floor: FloorResult | undefined;
    let capped: string | undefined;
    let agentProfile: ReturnType<typeof profilePerAgentChange> | undefined;
    const steps = [...new Set([1, 10, args.maxAgents].filter((n) => n <= args.maxAgents))].sort(
      (a, b) => a - b,
    );
    for (let n of steps) {
      // Memory guard: extrapolate from the agents already running; never start what cannot fit.
      if (fleet.size > 0) {
        const st = await fleet.stats();
        const perAgentMb = st.reduce((a, w) => a + w.heapUsedMb, 0) / fleet.size;
        const fitsHeap = Math.floor((args.workerHeapMb * 0.85 * args.workers) / perAgentMb);
        const fitsRam = Math.floor(((os.freemem() / 2 ** 20) * 0.75) / perAgentMb) + fleet.size;
        const fits = Math.min(fitsHeap, fitsRam);
        if (n > fits) {
          capped =
            `${n} agents x ${services} services do not fit (~${Math.round(perAgentMb)} MiB heap per agent; ` +
            `worker heaps ${args.workers} x ${args.workerHeapMb} MiB, free RAM ${Math.round(os.freemem() / 2 ** 20)} MiB): measured ${fits}`;
          progress(t0, `[${cluster}] ${capped}`);
          n = fits;
          if (n <= fleet.size) break;
        }
      }
      const tg = nowMs();
      const startMs = await fleet.grow(n, head);
      progress(
        t0,
        `[${cluster}] ${n} agents at head ${head} (${startMs.length} started in ${formatMs(nowMs() - tg)}, ${args.workers} workers)`,
      );
      const settled = args.settleHeap ? await fleet.settle() : undefined;
      // The relay's and this thread's too: the seed's change sets (250 services each) left their
      // garbage in old space there as well, and a major GC of it during the measured changes
      // (relay: up to 26 ms) took a core from the agents.
      const settledOthers = args.settleHeap
        ? { relay: roundedHeap(await relay!.settle()), main: roundedHeap(settleHeap()) }
        : undefined;
      // V8 sweeps and unmaps what the settle freed (0.5-1.3 GB per worker) on background threads;
      // in the apply benchmark that doubled the time of what ran beside it. The warm-up starts
      // after a second, and later while this process is still busy. Not earlier: in the apply
      // benchmark an idle-looking quarter second right after its settle was followed by more of
      // that work (the next measurement took 66-70 µs instead of 41-44).
      const quiet = settled ? await untilQuiet({ minMs: 1000 }) : undefined;
      if (quiet && !quiet.quiet)
        progress(
          t0,
          `[${cluster}] still busy ${formatMs(quiet.waitedMs)} after the heap settle; measuring anyway`,
        );
      const warmup: Sample[] = [];
      for (let k = 0; k < args.warmupChanges; k++) {
        const x = await commitAndWait();
        warmup.push(x);
        head = x.revision;
      }
      const last = n >= args.maxAgents || n === steps.at(-1) || capped !== undefined;
      const count = headline && last ? args.headlineChanges : args.changes;
      // The floor of this fleet size, one message after each change (see floor.ts).
      const floorSession =
        headline && observer.last
          ? await FloorSession.open(fleet, nc, jsm, cluster, n, args.gapMs, observer.last)
          : undefined;
      const samples: Sample[] = [];
      let mainElu: number;
      let cpuMs: Record<string, number>;
      try {
        await fleet.stats(); // resets the workers' utilization and GC windows
        mainGc.take();
        await relay.gc();
        const elu0 = performance.eventLoopUtilization();
        const cpu0 = sampleProcessCpu();
        for (let k = 0; k < count; k++) {
          const x = await commitAndWait();
          samples.push(x);
          head = x.revision;
          await floorSession?.sample();
        }
        mainElu = performance.eventLoopUtilization(elu0).utilization;
        cpuMs = processCpuSince(cpu0);
        // The changes' share: the floor messages' own CPU (each with its gap) is theirs.
        for (const [k, ms] of Object.entries(floorSession?.cpuMs() ?? {})) cpuMs[k] = (cpuMs[k] ?? 0) - ms;
      } finally {
        await floorSession?.close();
      }
      const f = floorSession?.result();
      if (f) {
        if (last) floor = f;
        progress(
          t0,
          `[${cluster}] floor: publish -> ${n} stream readers p50 ${f.publish_to_all_received_ms.p50} ms, ` +
            `p99 ${f.publish_to_all_received_ms.p99} ms (${f.payload_bytes} bytes, ${f.samples} messages between the changes)`,
        );
      }
      const st = await fleet.stats();
      const mainGcStats = mainGc.take();
      const relayGcStats = await relay.gc();
      const stats = stageSummaries(samples, [
        ...mainGcStats.pauses.map((p) => ({ worker: MAIN_THREAD, ...p })),
        ...relayGcStats.pauses.map((p) => ({ worker: RELAY_THREAD, ...p })),
        ...st.flatMap((w, worker) => w.gc.pauses.map((p) => ({ worker, ...p }))),
      ]);
      combinations.push({
        agents: n,
        services,
        changes: count,
        ...(startMs.length ? { fleet_start_ms_per_agent: roundSummary(summarize(startMs), 4) } : {}),
        cpu_ms_per_change: Object.fromEntries(
          Object.entries(cpuMs).map(([k, ms]) => [k, round(ms / count, 3)]),
        ),
        main_thread_elu: round(mainElu, 3),
        worker_elu: st.map((w) => round(w.elu, 3)),
        worker_heap_mb: st.map((w) => Math.round(w.heapUsedMb)),
        ...(settled ? { worker_heap_settled_mb: settled } : {}),
        ...(quiet ? { settle_quiet_wait_ms: quiet.waitedMs } : {}),
        ...(settledOthers
          ? { relay_heap_settled_mb: settledOthers.relay, main_heap_settled_mb: settledOthers.main }
          : {}),
        rss_mb: Math.round(process.memoryUsage().rss / 2 ** 20),
        gc: {
          main: withoutPauses(mainGcStats),
          relay: withoutPauses(relayGcStats),
          workers: st.map((w) => withoutPauses(w.gc)),
        },
        stats,
        ...(f ? { floor: f } : {}),
        ...(warmup.length ? { warmup: warmupSummary(warmup) } : {}),
      });
      const c = stats.commit_to_all_applied_ms;
      progress(
        t0,
        `[${cluster}] ${n} agents x ${services} services: commit->all applied p50 ${c.p50} ms, p99 ${c.p99} ms (${count} changes)`,
      );
      if (headline && last && args.profileChanges > 0) {
        // Where an agent's time goes: worker 0 under the V8 profiler for a few extra changes (not in the stats).
        const p = await fleet.profile(0, AGENT_MARKS, async () => {
          for (let k = 0; k < args.profileChanges; k++) head = (await commitAndWait()).revision;
        });
        agentProfile = profilePerAgentChange(p.summary, p.agents * args.profileChanges);
        progress(
          t0,
          `[${cluster}] profiled worker 0 (${p.agents} agents) over ${args.profileChanges} extra changes`,
        );
      }
    }
    const fst = await fleet.stats();
    const relayReport = await relay.report();
    return {
      services,
      resources,
      seedMs: round(seedMs, 4),
      seedRevisions: chunks.length,
      ...(bootstrap ? { bootstrap } : {}),
      combinations,
      ...(floor ? { floor } : {}),
      ...(agentProfile ? { agent_profile: agentProfile } : {}),
      relay: relayReport.metrics,
      logs: {
        relay: relayReport.log,
        bootstrap_agents: { warnings: agentLog.warnings, errors: agentLog.errors, first: agentLog.first },
        fleet_agents: fst.map((w) => ({
          warnings: w.warnings,
          errors: w.errors,
          first: w.firstMessages.slice(0, 5),
        })),
      },
      ...(capped ? { capped } : {}),
    };
  } finally {
    await fleet?.close().catch(() => undefined);
    observer?.close();
    mainGc.stop();
    await relay?.stop().catch(() => undefined);
    for (const name of [streamName(cluster), `KV_${statusBucket(cluster)}`])
      await jsm.streams.delete(name).catch(() => undefined);
    await store?.close().catch(() => undefined);
    await dbs.drop(db).catch(() => undefined);
  }
}

/** GC totals for the results; the pauses themselves only go beside the slowest changes. */
function withoutPauses({ pauses: _, ...rest }: GcStats): Omit<GcStats, 'pauses'> {
  return rest;
}
