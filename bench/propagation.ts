/**
 * `npm run bench -- propagation [--option=value ...]`
 *
 * Commit-to-applied latency of single-resource changes, from EventStore.append (no API) through an
 * in-process relay and the shared NATS JetStream to N real agents (startAgent, MemoryMapBackend),
 * for N = 1, 10, 100 and meshes of 1k and 10k Services (3 Workloads each, spread over 100 node
 * names), and, in the same run, the floor of the fan-out: a plain JetStream publish of a message of
 * the same size to 100 ordered consumers. Writes bench/results/propagation.json.
 *
 * Each mesh size gets its own database and a random cluster name (its own stream and status
 * bucket on the shared NATS, deleted at the end). The agents run in worker threads (`--workers`,
 * round-robin; each its own heap), each agent with its own NATS connection, as on real nodes.
 * Changes are committed one at a time; each waits until every agent applied it (the agent's
 * in-process hook AgentHandle.waitForRevision: the reconciler wrote the maps and the checkpoint),
 * then the next one is committed after `--gap-ms`.
 *
 * Stages of each change, all on one monotonic clock: append() called -> committed (append
 * resolved) -> published (a core subscriber on the revision subject in the main thread got it) ->
 * first agent applied -> last agent applied. `bootstrap_10k_ms`: one agent, empty maps, to the
 * head of the 10k mesh through GET /v1/snapshot of a real API (its production path).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { MemoryMapBackend } from '@meshplane/dataplane';
import { validateChangeSet } from '@meshplane/domain';
import { EventStore, migrateToLatest } from '@meshplane/event-store';
import {
  connectNats,
  readRevisionHeaders,
  revisionStreamConfig,
  revisionSubject,
  statusBucket,
  streamName,
} from '@meshplane/messaging';
import { type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers, type Msg, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { type AgentConfig, type Logger, startAgent } from '../services/agent/src';
import { createApiApp } from '../services/api/src/app';
import { type RelayConfig, type RelayHandle, startRelay } from '../services/relay/src';
import {
  formatMs,
  formatTable,
  machineInfo,
  meetsTarget,
  nowMs,
  parseArgs,
  printMachine,
  progress,
  round,
  roundSummary,
  type Summary,
  serverVersion,
  summarize,
  type Target,
  TempDatabases,
  writeResults,
} from './lib';

import type { ProfileSummary } from './lib/cpu-profile';
import { Fleet } from './propagation/fleet';
import { type GcStats, GcWatch } from './propagation/gc';
import { seedChangeSets, WeightChanges, WORKLOADS_PER_SERVICE } from './propagation/mesh';

const DEFAULTS = {
  /** Mesh sizes (Services; each has 3 Workloads). */
  small: 1000,
  large: 10_000,
  /** Largest fleet; the steps are 1, 10 and this. */
  maxAgents: 100,
  /** Node names the workloads are spread over (the fleet's nodes are node-0 .. node-<N-1>). */
  nodes: 100,
  /** Sequential single-resource changes per (agents, size) combination... */
  changes: 100,
  /** ...and for the headline combination (most agents, large mesh), and floor samples. */
  headlineChanges: 200,
  /** Pause between one change being applied everywhere and the next commit. */
  gapMs: 20,
  /** Worker threads hosting the agents (round-robin). */
  workers: 2,
  /** Old-generation heap limit of each worker, MiB (a limit, not a reservation). */
  workerHeapMb: 8192,
  /** Services per seeding change set (with their workloads). */
  seedChunk: 250,
  heartbeatMs: 5000,
  /** Extra changes with worker 0 under the CPU profiler, after the headline measurement (0: none). */
  profileChanges: 30,
  /** Bootstrap measurements (one agent, empty maps, to head) at each size. */
  bootstrap: true,
  seed: 20_251_125,
};
type Args = typeof DEFAULTS;

const TARGETS: Record<string, Target> = {
  p99_ratio: { op: '<=', threshold: 2 },
};

const NATS_URL = process.env.NATS_URL || 'nats://127.0.0.1:4222';
const ACTOR = 'bench-propagation';
const REASON = 'bench: canary weight';

const validate = (
  view: Parameters<typeof validateChangeSet>[0],
  effective: Parameters<typeof validateChangeSet>[1],
) => validateChangeSet(view, effective, (i) => `apply[${i}]`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function traceparent(): string {
  return `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
}

/** Traffic stays on loopback: refuse any other NATS or Postgres host. */
function assertLoopback(url: string, what: string): void {
  for (const one of url.split(',')) {
    const host = new URL(one.trim()).hostname;
    if (!(host === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(host)))
      throw new Error(`${what} must be on 127.0.0.0/8 for this benchmark, got ${host}`);
  }
}

/** Warnings and errors of the in-process services, counted; the first few kept for the report. */
class LogCounter {
  lines = 0;
  warnings = 0;
  errors = 0;
  readonly first: string[] = [];
  sink = (line: Record<string, unknown>) => {
    this.lines++;
    JSON.stringify(line); // production writes it as one JSON line; the encoding is part of the cost
    if (line.level === 'warn' || line.level === 'error')
      this.note(String(line.level), String(line.msg), line);
  };
  logger: Logger = {
    info: () => {
      this.lines++;
    },
    warn: (m, f) => this.note('warn', m, f),
    error: (m, f) => this.note('error', m, f),
  };
  private note(level: string, msg: string, fields?: Record<string, unknown>): void {
    if (level === 'warn') this.warnings++;
    else this.errors++;
    if (this.first.length < 10)
      this.first.push(`${level} ${msg} ${fields ? JSON.stringify(fields).slice(0, 300) : ''}`);
  }
}

/** A core subscriber on the revision subject: when each revision was on the wire, and its size. */
class Observer {
  readonly seen = new Map<number, number>();
  last: { data: Uint8Array; headers: MsgHdrs | undefined } | undefined;
  private readonly sub: ReturnType<NatsConnection['subscribe']>;
  constructor(nc: NatsConnection, cluster: string) {
    this.sub = nc.subscribe(revisionSubject(cluster), {
      callback: (_err, m: Msg) => {
        const at = nowMs();
        const rev = readRevisionHeaders(m.headers).revision;
        if (rev === undefined) return;
        this.seen.set(rev, at);
        this.last = { data: m.data.slice(), headers: m.headers };
      },
    });
  }
  async when(revision: number, timeoutMs = 5_000): Promise<number | undefined> {
    const end = nowMs() + timeoutMs;
    while (!this.seen.has(revision) && nowMs() < end) await sleep(1);
    return this.seen.get(revision);
  }
  close(): void {
    this.sub.unsubscribe();
  }
}

interface Sample {
  revision: number;
  call: number;
  commit: number;
  /** The first subscriber anywhere (main thread or a worker thread) that had the message. */
  published: number | undefined;
  /** The last worker thread whose own subscriber had it. */
  receivedAllThreads: number | undefined;
  first: number;
  all: number;
  /** Per worker thread: (its last agent applied - the thread received it) and its agent count. */
  threads: { spanMs: number; agents: number }[];
  applyMs: number[];
}

function stageSummaries(samples: Sample[]) {
  const s = (xs: number[]): Summary | undefined => (xs.length ? roundSummary(summarize(xs), 4) : undefined);
  const pub = samples.filter((x) => x.published !== undefined) as (Sample & { published: number })[];
  const rec = samples.filter((x) => x.receivedAllThreads !== undefined) as (Sample & {
    published: number;
    receivedAllThreads: number;
  })[];
  const applies = samples.flatMap((x) => x.applyMs);
  return {
    commit_to_all_applied_ms: s(samples.map((x) => x.all - x.commit))!,
    call_to_all_applied_ms: s(samples.map((x) => x.all - x.call))!,
    stages_ms: {
      append_call_to_committed: s(samples.map((x) => x.commit - x.call)),
      committed_to_published: s(pub.map((x) => x.published - x.commit)),
      published_to_received_by_every_thread: s(rec.map((x) => x.receivedAllThreads - x.published)),
      published_to_first_applied: s(pub.map((x) => x.first - x.published)),
      published_to_all_applied: s(pub.map((x) => x.all - x.published)),
      thread_received_to_its_last_agent_applied: s(samples.flatMap((x) => x.threads.map((t) => t.spanMs))),
    },
    /** (last applied - received) / agents, per thread: the agents of a thread take turns on its CPU. */
    thread_ms_per_agent: s(
      samples.flatMap((x) => x.threads.filter((t) => t.agents > 0).map((t) => t.spanMs / t.agents)),
    ),
    agent_reconciler_apply_ms_integer: s(applies),
  };
}

/** Agent-side function names whose inclusive time the worker profile reports. */
const AGENT_MARKS = [
  'applyPending',
  'foldRevision',
  'decodeRevision',
  'evolveInPlace',
  'update',
  'submit',
  'planOps',
  'executeOp',
  'writeMeta',
  'publish',
  'putNodeStatus',
  'encodeNodeStatus',
  'outcome',
];

/** A worker's profile per agent and change: ms of that thread per (agent x change). */
function profilePerAgentChange(s: ProfileSummary, agentChanges: number) {
  const per = (rec: Record<string, number>, limit: number) =>
    Object.fromEntries(
      Object.entries(rec)
        .slice(0, limit)
        .map(([k, v]) => [k, round(v / agentChanges, 3)]),
    );
  return {
    note:
      'worker thread 0 under the V8 sampling profiler (200 us) for extra changes not in the stats; ms of that thread ' +
      'per agent per change (its agents x the changes); inclusive = any frame of the group / function on the stack',
    agent_changes: agentChanges,
    busy_ms_per_agent_change: round(s.busyMs / agentChanges, 3),
    self_by_group: per(s.selfByGroup, 20),
    inclusive_by_group: per(s.inclusiveByGroup, 20),
    inclusive_by_function: per(s.marks, 20),
    top_self_functions_ms_total: s.topSelf,
  };
}

interface Combination {
  agents: number;
  services: number;
  changes: number;
  fleet_start_ms_per_agent?: Summary;
  main_thread_elu: number;
  worker_elu: number[];
  worker_heap_mb: number[];
  rss_mb: number;
  /** Garbage collection during the measured changes: the main thread and each worker thread. */
  gc: { main: GcStats; workers: GcStats[] };
  stats: ReturnType<typeof stageSummaries>;
  /** Large mesh only: the floor with as many ordered consumers as there are agents, right after. */
  floor?: FloorResult;
}

async function untilTrue(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = nowMs() + timeoutMs;
  while (!cond()) {
    if (nowMs() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** One agent from empty maps (a new MemoryMapBackend) to `head`, in this thread, with its own NATS connection. */
async function bootstrapOnce(
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

interface SizeResult {
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

interface FloorResult {
  consumers: number;
  payload_bytes: number;
  header_keys: string[];
  publish_to_all_received_ms: Summary;
  publish_to_first_received_ms: Summary;
  publish_ack_ms: Summary;
}

async function floorRun(
  fleet: Fleet,
  nc: NatsConnection,
  jsm: JetStreamManager,
  cluster: string,
  consumers: number,
  samples: number,
  gapMs: number,
  payload: { data: Uint8Array; headers: MsgHdrs | undefined },
): Promise<FloorResult> {
  const stream = `BENCHFLOOR_${streamName(cluster)}_${consumers}`;
  const subject = `bench.${cluster}.floor${consumers}`;
  // Same stream settings as the revision stream (file storage, dedupe window, direct get).
  await jsm.streams.add(revisionStreamConfig(cluster, { name: stream, subject }));
  try {
    await fleet.floorStart(consumers, stream);
    const js = jetstream(nc);
    // The message's own headers (revision, cluster, hash, trace); the publish options set the Nats-* ones.
    const keys = payload.headers
      ? payload.headers.keys().filter((k) => !k.toLowerCase().startsWith('nats-'))
      : [];
    const hdrs = () => {
      const h = headers();
      for (const k of keys) for (const v of payload.headers!.values(k)) h.append(k, v);
      return h;
    };
    const all: number[] = [];
    const first: number[] = [];
    const acks: number[] = [];
    for (let i = 0; i < samples + 3; i++) {
      await sleep(gapMs);
      const t0 = nowMs();
      const ack = await js.publish(subject, payload.data, {
        headers: hdrs(),
        msgID: `${cluster}:floor:${i}`,
      });
      const tAck = nowMs();
      await fleet.floorWait(ack.seq, consumers, 30_000);
      if (i < 3) continue; // warm-up: the consumers' first pulls
      const times = [...fleet.floorRecv.get(ack.seq)!.values()];
      all.push(Math.max(...times) - t0);
      first.push(Math.min(...times) - t0);
      acks.push(tAck - t0);
    }
    return {
      consumers,
      payload_bytes: payload.data.length,
      header_keys: keys,
      publish_to_all_received_ms: roundSummary(summarize(all), 4),
      publish_to_first_received_ms: roundSummary(summarize(first), 4),
      publish_ack_ms: roundSummary(summarize(acks), 4),
    };
  } finally {
    await fleet.floorStop().catch(() => undefined);
    await jsm.streams.delete(stream).catch(() => undefined);
  }
}

async function runSize(
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
  const relayLog = new LogCounter();
  const agentLog = new LogCounter();
  const mainGc = new GcWatch();
  let store: EventStore | undefined;
  let relay: RelayHandle | undefined;
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

    const relayConfig: RelayConfig = {
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
      logSink: relayLog.sink,
    };
    relay = await startRelay(relayConfig);
    const theRelay = relay;
    await untilTrue(
      () => theRelay.metrics.lastPublishedRevision >= head,
      120_000,
      'the relay to publish the seed',
    );
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
      { cluster, natsUrl: NATS_URL, databaseUrl: db.url, heartbeatMs: args.heartbeatMs },
      args.workerHeapMb,
    );
    const changes = new WeightChanges(services, args.nodes, args.seed + services);
    const theFleet = fleet;
    const theObserver = observer;
    const theStore = store;
    /** Commits one change, then waits until every agent applied it; every stage on one clock. */
    const commitAndWait = async (): Promise<Sample> => {
      await sleep(args.gapMs);
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
      const mainSeen = await theObserver.when(revision);
      const seen = await theFleet.seenBy(revision, 1_000);
      const times = [...applied.at.values()];
      const seenTimes = [...seen.values()];
      const threads = Array.from({ length: theFleet.workerCount }, (_, w) => {
        const mine = [...applied.at.entries()]
          .filter(([node]) => theFleet.workerOf(node) === w)
          .map(([, at]) => at);
        const got = seen.get(w);
        return mine.length && got !== undefined
          ? { spanMs: Math.max(...mine) - got, agents: mine.length }
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
      await fleet.stats(); // resets the workers' utilization and GC windows
      mainGc.take();
      const elu0 = performance.eventLoopUtilization();
      const last = n >= args.maxAgents || n === steps.at(-1) || capped !== undefined;
      const count = headline && last ? args.headlineChanges : args.changes;
      const samples: Sample[] = [];
      for (let k = 0; k < count; k++) {
        const x = await commitAndWait();
        samples.push(x);
        head = x.revision;
      }
      const mainElu = performance.eventLoopUtilization(elu0).utilization;
      const st = await fleet.stats();
      const stats = stageSummaries(samples);
      combinations.push({
        agents: n,
        services,
        changes: count,
        ...(startMs.length ? { fleet_start_ms_per_agent: roundSummary(summarize(startMs), 4) } : {}),
        main_thread_elu: round(mainElu, 3),
        worker_elu: st.map((w) => round(w.elu, 3)),
        worker_heap_mb: st.map((w) => Math.round(w.heapUsedMb)),
        rss_mb: Math.round(process.memoryUsage().rss / 2 ** 20),
        gc: { main: mainGc.take(), workers: st.map((w) => w.gc) },
        stats,
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
      if (headline && observer.last) {
        const f = await floorRun(fleet, nc, jsm, cluster, n, count, args.gapMs, observer.last);
        combinations.at(-1)!.floor = f;
        if (last) floor = f;
        progress(
          t0,
          `[${cluster}] floor: publish -> ${n} ordered consumers p50 ${f.publish_to_all_received_ms.p50} ms, ` +
            `p99 ${f.publish_to_all_received_ms.p99} ms (${f.payload_bytes} bytes)`,
        );
      }
    }
    const fst = await fleet.stats();
    return {
      services,
      resources,
      seedMs: round(seedMs, 4),
      seedRevisions: chunks.length,
      ...(bootstrap ? { bootstrap } : {}),
      combinations,
      ...(floor ? { floor } : {}),
      ...(agentProfile ? { agent_profile: agentProfile } : {}),
      relay: theRelay.metrics.snapshot(),
      logs: {
        relay: {
          lines: relayLog.lines,
          warnings: relayLog.warnings,
          errors: relayLog.errors,
          first: relayLog.first,
        },
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

function combinationTable(sizes: SizeResult[]): string {
  const rows = sizes.flatMap((s) =>
    s.combinations.map((c) => {
      const st = c.stats.stages_ms;
      return [
        String(c.agents),
        String(c.services),
        String(c.changes),
        String(c.stats.commit_to_all_applied_ms.p50),
        String(c.stats.commit_to_all_applied_ms.p99),
        String(st.append_call_to_committed?.p50 ?? ''),
        String(st.committed_to_published?.p50 ?? ''),
        String(st.published_to_received_by_every_thread?.p50 ?? ''),
        String(st.published_to_all_applied?.p50 ?? ''),
        String(c.stats.thread_ms_per_agent?.p50 ?? ''),
        String(c.floor?.publish_to_all_received_ms.p99 ?? ''),
        c.floor
          ? String(round(c.stats.commit_to_all_applied_ms.p99 / c.floor.publish_to_all_received_ms.p99, 3))
          : '',
        String(Math.max(...c.gc.workers.map((g) => g.majorMaxMs), c.gc.main.majorMaxMs)),
      ];
    }),
  );
  const header = [
    'agents',
    'services',
    'changes',
    'p50 ms',
    'p99 ms',
    'append p50',
    'commit->pub p50',
    'pub->threads p50',
    'pub->all applied p50',
    'thread ms/agent p50',
    'floor p99',
    'p99/floor',
    'max major GC ms',
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function findings(m: Record<string, number>, sizes: SizeResult[]): string[] {
  const out: string[] = [];
  const large = sizes.find((s) => s.floor) ?? sizes.at(-1);
  const head = large?.combinations.at(-1);
  const one = large?.combinations.find((c) => c.agents === 1);
  if (head) {
    const st = head.stats.stages_ms;
    const floor = large?.floor;
    out.push(
      `${head.agents} agents x ${head.services} services, per change (p50): append ${st.append_call_to_committed?.p50} ms ` +
        `(not in the latency); committed -> published ${st.committed_to_published?.p50} ms (relay: NOTIFY, read, ` +
        `publish, ack); published -> every worker thread received ${st.published_to_received_by_every_thread?.p50} ms; ` +
        `published -> all agents applied ${st.published_to_all_applied?.p50} ms` +
        (floor
          ? `; the floor (publish -> ${floor.consumers} ordered consumers received) p50 ` +
            `${floor.publish_to_all_received_ms.p50} ms, p99 ${floor.publish_to_all_received_ms.p99} ms.`
          : '.'),
    );
    out.push(
      `the ${head.agents} agents share ${head.worker_elu.length} worker threads on ${os.cpus().length} cores and take turns ` +
        `on them: a thread's last agent applied ${st.thread_received_to_its_last_agent_applied?.p50} ms (p50) after the ` +
        `thread received the revision, ${head.stats.thread_ms_per_agent?.p50} ms per agent (decode, evolve, incremental ` +
        `compile, diff, map writes, checkpoint, status put); worker event-loop utilization ${head.worker_elu.join(', ')}. ` +
        'On real nodes each agent has its own CPU.',
    );
  }
  if (head) {
    const w = head.gc.workers;
    out.push(
      `garbage collection during those changes: worker threads ${w.map((g) => `${g.majorCount} full GCs (max ${g.majorMaxMs} ms, ` + `${g.totalMs} ms in all GCs)`).join('; ')}, heaps ${head.worker_heap_mb.join(' / ')} MiB (the simulation puts ` +
        `${Math.ceil(head.agents / w.length)} agents' state in one heap; a real agent's heap is ~1/${Math.ceil(head.agents / w.length)} of that).`,
    );
  }
  const ratios = (large?.combinations ?? [])
    .filter((c) => c.floor)
    .map(
      (c) =>
        `${c.agents} agent(s): p99 ${c.stats.commit_to_all_applied_ms.p99} ms vs floor ${c.floor!.publish_to_all_received_ms.p99} ms = ` +
        `${round(c.stats.commit_to_all_applied_ms.p99 / c.floor!.publish_to_all_received_ms.p99, 3)}`,
    );
  if (ratios.length)
    out.push(
      `p99 / floor with as many consumers as agents, ${large?.services} services: ${ratios.join('; ')}.`,
    );
  const prof = large?.agent_profile;
  if (prof) {
    const groups = Object.entries(prof.self_by_group)
      .filter(([k]) => k !== '(idle)')
      .slice(0, 8)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    const fns = Object.entries(prof.inclusive_by_function)
      .slice(0, 10)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    out.push(
      `profile of one worker thread: ${prof.busy_ms_per_agent_change} ms busy per agent per change; self time by ` +
        `group (ms): ${groups}; inclusive by function (ms): ${fns}.`,
    );
  }
  if (one) {
    const c = one.stats.commit_to_all_applied_ms;
    out.push(
      `a single agent at ${one.services} services: commit -> applied p50 ${c.p50} ms, p99 ${c.p99} ms (what one node ` +
        'sees when its agent has a CPU to itself).',
    );
  }
  for (const s of sizes) if (s.capped) out.push(`CAPPED: ${s.capped}.`);
  for (const [name, t] of Object.entries(TARGETS))
    if (m[name] !== undefined && !meetsTarget(m[name]!, t))
      out.push(
        `${name} MISS (${m[name]} vs ${t.op} ${t.threshold}): see the stage breakdown above and details.sizes.`,
      );
  return out;
}

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

    const large = sizes.find((s) => s.floor) ?? sizes.at(-1)!;
    const head = large.combinations.at(-1)!;
    const floor = large.floor;
    const metrics: Record<string, number> = {
      p50_ms: head.stats.commit_to_all_applied_ms.p50,
      p99_ms: head.stats.commit_to_all_applied_ms.p99,
      floor_p50_ms: floor ? floor.publish_to_all_received_ms.p50 : Number.NaN,
      floor_p99_ms: floor ? floor.publish_to_all_received_ms.p99 : Number.NaN,
      p99_ratio: floor
        ? round(head.stats.commit_to_all_applied_ms.p99 / floor.publish_to_all_received_ms.p99, 3)
        : Number.NaN,
      bootstrap_10k_ms: sizes.find((s) => s.services === 10_000)?.bootstrap?.snapshot_http_ms ?? Number.NaN,
      headline_agents: head.agents,
      headline_services: head.services,
    };
    for (const s of sizes)
      for (const c of s.combinations) {
        const k = `${c.agents}x${Math.round(c.services / 1000)}k`;
        metrics[`p50_ms_${k}`] = c.stats.commit_to_all_applied_ms.p50;
        metrics[`p99_ms_${k}`] = c.stats.commit_to_all_applied_ms.p99;
        if (c.floor) {
          metrics[`floor_p99_ms_${k}`] = c.floor.publish_to_all_received_ms.p99;
          metrics[`p99_ratio_${k}`] = round(
            c.stats.commit_to_all_applied_ms.p99 / c.floor.publish_to_all_received_ms.p99,
            3,
          );
        }
      }
    for (const s of sizes)
      if (s.bootstrap) {
        const k = `${Math.round(s.services / 1000)}k`;
        metrics[`bootstrap_${k}_snapshot_ms`] = s.bootstrap.snapshot_http_ms;
        metrics[`bootstrap_${k}_stream_replay_ms`] = s.bootstrap.stream_replay_ms;
      }
    const table = combinationTable(sizes);
    const details: Record<string, unknown> = {
      combination_table: table.split('\n'),
      sizes,
      load_average_at_end: os.loadavg().map((x) => round(x, 3)),
    };
    details.findings = findings(metrics, sizes);
    const durationMs = nowMs() - t0;
    const file = writeResults({
      benchmark: 'propagation',
      metrics,
      targets: TARGETS,
      params: {
        ...args,
        nats_url: NATS_URL,
        latency:
          'p50_ms / p99_ms: from append() resolved (committed) to the last agent having applied the revision ' +
          '(AgentHandle.waitForRevision, an in-process hook: maps written and checkpoint stored), single-resource ' +
          `changes (one Workload weight 1..4), one at a time, ${args.gapMs} ms apart; headline = most agents x largest mesh`,
        floor:
          'a plain JetStream publish (js.publish, msgID, the same headers and payload bytes as a measured revision ' +
          'message) to a stream configured like the revision stream, received by the same number of ordered ' +
          'consumers (each its own NATS connection, consume() like the agents) in the same worker threads, while the ' +
          'agents run; from the publish call to the last consumer having it',
        agents:
          'startAgent (services/agent) with a MemoryMapBackend each, own NATS connection, bootstrapped from the current ' +
          'state read from the database once per worker (what GET /v1/snapshot serves); round-robin over worker threads',
        relay:
          'startRelay in the main thread (LISTEN/NOTIFY wake-up, poll 1 s fallback), logs JSON-encoded and counted',
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
      `\npropagation on ${printMachine(machine)}\n\n${formatTable(metrics, TARGETS)}\n\n${table}\n\n`,
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
