/**
 * `npm run bench -- api [--option=value ...]`
 *
 * Single-resource changes (one Workload put with a new weight and version label each time) from
 * 16 concurrent clients, two ways, in one run against the same PostgreSQL, each on its own fresh
 * database seeded with the same population:
 *
 *  - http:   real HTTP POST /v1/changes with an operator token, node:http on a keep-alive Agent
 *            (`--fetch=true`: global fetch), to the Nest API (createApiApp) listening on 127.0.0.1.
 *            The clients run in a worker thread, so they do not share the server's event loop.
 *  - append: the same changes through EventStore.append directly, opened like the API opens it
 *            (default pool, same cluster and snapshot interval), with the same `validate` hook
 *            the API passes (validateChangeSet from @meshplane/domain).
 *
 * After a warm-up of each, they alternate in slices (`rounds` x `duration / rounds` s each), so load
 * from other work on the machine hits both alike. `http_vs_append_ratio` is the HTTP layer's share
 * of the store's throughput (target >= 0.5). With `--compare-client` (default) a second client
 * worker using the other client (fetch, which costs ~3x the CPU per request) takes its own slices
 * against the same API: on 2 shared cores the load generator's CPU is taken from the server, and
 * this shows how much.
 *
 * Diagnostics (extra runs, not in the rates; `--profile-seconds=0` skips them): the API thread
 * under the V8 CPU profiler (as `node --cpu-prof`; raw profiles in the OS temp directory) for each
 * path, and every pg statement of the group-commit transaction timed from call to result with the
 * event-loop delay sampled. Server-side request and append() durations are recorded during the
 * measured HTTP slices (the log line's durationMs; append() timed by wrapping the API's store).
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { type IntervalHistogram, monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { validateChangeSet } from '@meshplane/domain';
import { EventStore, migrateToLatest } from '@meshplane/event-store';
import type { INestApplication } from '@nestjs/common';
import { createApiApp } from '../services/api/src/app';
import { ChangeSequence, seedChunks, toChange, traceparent } from './api/changes';
import type {
  HttpClientKind,
  HttpRunReply,
  HttpWorkerData,
  HttpWorkerReply,
  HttpWorkerRequest,
} from './api/http-worker';
import {
  checkpoint,
  cpuSample,
  cpuSince,
  formatMs,
  formatTable,
  machineInfo,
  meetsTarget,
  nowMs,
  parseArgs,
  printMachine,
  profileStatements,
  progress,
  round,
  roundSummary,
  runConcurrent,
  type StatementStats,
  serverVersion,
  showSettings,
  summarize,
  type Target,
  TempDatabases,
  type ThroughputResult,
  writeResults,
} from './lib';
import { type ProfileSummary, summarizeProfile, withCpuProfile } from './lib/cpu-profile';

const DEFAULTS = {
  /** Concurrent clients (HTTP) and concurrent appenders (store). */
  clients: 16,
  /** Seconds measured per path, in `rounds` alternating slices. */
  duration: 10,
  rounds: 4,
  /** Seconds of warm-up per path before measuring. */
  warmup: 2,
  /** Workloads seeded in each database; every measured change updates one of them. */
  population: 1000,
  /** Resources per seeding change set. */
  seedChunk: 500,
  /** Seconds of each profiled extra run (0: no profiles). */
  profileSeconds: 3,
  /**
   * HTTP client: a minimal HTTP/1.1 client on one keep-alive socket per client (default, like wrk);
   * `--raw=false` node:http on a keep-alive Agent; `--fetch` global fetch (undici). The client is not
   * what is measured, and on 2 shared cores its CPU is taken from the API under test (bench/README.md).
   */
  raw: true,
  fetch: false,
  /** Also measure the other client (interleaved, same API): how much of the gap is the load generator's CPU. */
  compareClient: true,
};
type Args = typeof DEFAULTS;

const CLIENT_NAMES: Record<HttpClientKind, string> = {
  raw: 'a minimal HTTP/1.1 client on one keep-alive socket per client',
  'node-http': 'node:http on a keep-alive Agent',
  fetch: 'global fetch (undici, keep-alive)',
};
const clientKind = (a: Args): HttpClientKind => (a.fetch ? 'fetch' : a.raw ? 'raw' : 'node-http');
/** The compared client: node:http next to the minimal one, fetch next to node:http. */
const otherClient = (k: HttpClientKind): HttpClientKind => (k === 'node-http' ? 'fetch' : 'node-http');

const TARGETS: Record<string, Target> = {
  http_vs_append_ratio: { op: '>=', threshold: 0.5 },
};

const CLUSTER = 'bench';
const BOOTSTRAP_TOKEN = `bench-api-bootstrap-${randomUUID()}`;
const OPERATOR = 'bench-operator';
const REASON = 'bench: change one workload';

/** Function names whose inclusive share of the API thread is reported from the profile. */
const PROFILE_MARKS = [
  'submit',
  'canActivate',
  'authenticate',
  'parseInput',
  'toChanges',
  'validateChangeSet',
  'jsonParser',
  'requestContext',
  'handle',
  'parserOnHeadersComplete',
  'processTicksAndRejections',
  'writeChangeSet',
  'prepareAppend',
];

/** Same options the API uses for its store (services/api/src/app.module.ts), another application name. */
function openStoreLikeTheApi(url: string, applicationName: string): Promise<EventStore> {
  return EventStore.open({ databaseUrl: url, cluster: CLUSTER, applicationName });
}

const validate = (
  view: Parameters<typeof validateChangeSet>[0],
  effective: Parameters<typeof validateChangeSet>[1],
) => validateChangeSet(view, effective, (i) => `apply[${i}]`);

/** Seeds `population` Workloads (generation 1) through a store with the API's validate hook. */
async function seed(url: string, args: Args): Promise<number> {
  const store = await openStoreLikeTheApi(url, 'bench-api-seed');
  try {
    let head = 0;
    for (const chunk of seedChunks(args.population, args.seedChunk)) {
      const r = await store.append(chunk.map(toChange), {
        actor: 'bench-seed',
        reason: 'bench: seed',
        validate,
      });
      if (r.status !== 'appended') throw new Error(`seed append returned ${r.status}`);
      head = r.changeSet.revision;
    }
    return head;
  } finally {
    await store.close();
  }
}

/** The HTTP clients in their worker thread, driven one run at a time. */
class HttpClients {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (r: HttpRunReply) => void; reject: (e: Error) => void }
  >();
  private failure: Error | undefined;

  constructor(data: HttpWorkerData) {
    this.worker = new Worker(path.join(__dirname, 'api', 'http-worker.js'), { workerData: data });
    this.worker.on('message', (m: HttpWorkerReply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.type === 'done') p.resolve(m);
      else p.reject(new Error(`http client worker: ${m.message}`));
    });
    this.worker.on('error', (err) => this.failAll(err));
    this.worker.on('exit', (code) => this.failAll(new Error(`http client worker exited with ${code}`)));
  }

  private failAll(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  run(durationMs: number): Promise<HttpRunReply> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const msg: HttpWorkerRequest = { type: 'run', id, durationMs };
      this.worker.postMessage(msg);
    });
  }

  async close(): Promise<void> {
    this.failure ??= new Error('closed');
    await this.worker.terminate();
  }
}

interface PathResult {
  ops: number;
  elapsedMs: number;
  latencies: number[];
  /** Event-loop utilization of the main thread (the API server, or the appenders and the store). */
  mainElu: number;
  /** CPU of this process (all threads) per op, ms. */
  processCpuMsPerOp: number;
  machineBusy: number;
  /** HTTP only: event-loop utilization of the client thread. */
  clientElu?: number;
}

function accumulate(acc: PathResult | undefined, r: PathResult): PathResult {
  if (!acc) return r;
  const ops = acc.ops + r.ops;
  const elapsedMs = acc.elapsedMs + r.elapsedMs;
  const w = (a: number, b: number) => (a * acc.elapsedMs + b * r.elapsedMs) / elapsedMs;
  return {
    ops,
    elapsedMs,
    latencies: acc.latencies.concat(r.latencies),
    mainElu: w(acc.mainElu, r.mainElu),
    processCpuMsPerOp: (acc.processCpuMsPerOp * acc.ops + r.processCpuMsPerOp * r.ops) / ops,
    machineBusy: w(acc.machineBusy, r.machineBusy),
    ...(r.clientElu !== undefined ? { clientElu: w(acc.clientElu ?? 0, r.clientElu) } : {}),
  };
}

function pathDetails(r: PathResult) {
  const perS = (r.ops * 1000) / r.elapsedMs;
  return {
    ops: r.ops,
    elapsed_s: round(r.elapsedMs / 1000, 4),
    per_s: round(perS, 4),
    latency_ms: roundSummary(summarize(r.latencies), 3),
    main_thread_event_loop_utilization: round(r.mainElu, 3),
    ...(r.clientElu !== undefined
      ? {
          client_thread_event_loop_utilization: round(r.clientElu, 3),
          client_thread_busy_ms_per_op: round((r.clientElu * r.elapsedMs) / r.ops, 3),
        }
      : {}),
    process_cpu_ms_per_op: round(r.processCpuMsPerOp, 3),
    main_thread_busy_ms_per_op: round((r.mainElu * r.elapsedMs) / r.ops, 3),
    machine_cpu_busy: round(r.machineBusy, 3),
  };
}

function profileDetails(s: ProfileSummary, ops: number) {
  const perOp = (rec: Record<string, number>, limit: number) =>
    Object.fromEntries(
      Object.entries(rec)
        .slice(0, limit)
        .map(([k, v]) => [k, round(v / ops, 3)]),
    );
  return {
    ops,
    sampled_ms: s.totalMs,
    busy_ms: s.busyMs,
    busy_ms_per_op: round(s.busyMs / ops, 3),
    self_ms_per_op_by_group: perOp(s.selfByGroup, 20),
    inclusive_ms_per_op_by_group: perOp(s.inclusiveByGroup, 20),
    inclusive_ms_per_op_by_function: perOp(s.marks, 20),
    top_self_functions_ms: s.topSelf,
  };
}

function classifyStatement(sql: string): string | undefined {
  const s = sql.trimStart();
  if (s.startsWith('BEGIN')) return 'begin';
  if (s.startsWith('COMMIT')) return 'commit';
  if (s.startsWith('ROLLBACK')) return 'rollback';
  if (s.includes('FROM mesh_head WHERE id FOR UPDATE')) return 'lock_head';
  if (s.startsWith('WITH hd AS')) return 'write_change_set';
  return undefined;
}

/** Runs `fn` while sampling this thread's event-loop delay (1 ms resolution). */
async function withLoopDelay<T>(fn: () => Promise<T>): Promise<{ value: T; delay: IntervalHistogram }> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  try {
    return { value: await fn(), delay: h };
  } finally {
    h.disable();
  }
}

/**
 * The store writes each group-committed batch with one statement: in autocommit when it builds on
 * the head it last saw (one round trip), under BEGIN / FOR UPDATE / COMMIT when it had to look.
 */
function statementDetails(ops: number, stats: Record<string, StatementStats>, delay: IntervalHistogram) {
  const batches = stats.write_change_set?.count ?? 0;
  const locked = stats.lock_head?.count ?? 0;
  const mean = (k: string) => round(stats[k]?.meanMs ?? 0, 3);
  const total = (keys: string[]) => keys.reduce((a, k) => a + (stats[k]?.totalMs ?? 0), 0);
  const allMs = total(['begin', 'lock_head', 'write_change_set', 'commit', 'rollback']);
  return {
    ops,
    batches,
    batches_under_lock: locked,
    change_sets_per_batch: batches ? round(ops / batches, 3) : null,
    mean_ms: {
      begin: mean('begin'),
      lock_head: mean('lock_head'),
      write_change_set: mean('write_change_set'),
      commit: mean('commit'),
    },
    statement_ms_per_batch: batches ? round(allMs / batches, 3) : null,
    statement_ms_per_change: round(allMs / ops, 3),
    statements: Object.fromEntries(
      Object.entries(stats).map(([k, v]) => [k, { count: v.count, mean_ms: round(v.meanMs, 3) }]),
    ),
    event_loop_delay_ms: {
      p50: round(delay.percentile(50) / 1e6, 3),
      p99: round(delay.percentile(99) / 1e6, 3),
      max: round(delay.max / 1e6, 3),
    },
  };
}

/** Plain-language findings computed from the numbers (also printed under the table). */
function findings(m: Record<string, number>, d: Record<string, unknown>): string[] {
  const out: string[] = [];
  const http = d.http as ReturnType<typeof pathDetails>;
  const app = d.append as ReturnType<typeof pathDetails>;
  out.push(
    `HTTP: ${Math.round(http.per_s)} changes/s, p50 ${http.latency_ms.p50} ms, p99 ${http.latency_ms.p99} ms; ` +
      `append(): ${Math.round(app.per_s)} changes/s, p50 ${app.latency_ms.p50} ms, p99 ${app.latency_ms.p99} ms ` +
      `(${DEFAULTS.clients} concurrent each unless overridden).`,
  );
  out.push(
    `main thread busy: ${http.main_thread_busy_ms_per_op} ms per HTTP change (API server thread, event-loop ` +
      `utilization ${http.main_thread_event_loop_utilization}) vs ${app.main_thread_busy_ms_per_op} ms per ` +
      `append (utilization ${app.main_thread_event_loop_utilization}); client thread utilization ` +
      `${http.client_thread_event_loop_utilization}; all cores ${Math.round(http.machine_cpu_busy * 100)}% / ` +
      `${Math.round(app.machine_cpu_busy * 100)}% busy.`,
  );
  const altKey = Object.keys(d).find((k) => k.startsWith('http_') && k.endsWith('_client'));
  if (altKey) {
    const x = d[altKey] as ReturnType<typeof pathDetails>;
    out.push(
      `load generator: the primary client thread is busy ${http.client_thread_busy_ms_per_op} ms per request; with ` +
        `${altKey.replace(/^http_|_client$/g, '')} as the client (${x.client_thread_busy_ms_per_op} ms per request) the same ` +
        `API does ${Math.round(x.per_s)} changes/s (p50 ${x.latency_ms.p50} ms, p99 ${x.latency_ms.p99} ms), ` +
        `${round(x.per_s / app.per_s, 3)} of append(): on 2 shared cores the client's CPU is taken from the API and Postgres.`,
    );
  }
  const prof = d.profile as
    | { http?: ReturnType<typeof profileDetails>; append?: ReturnType<typeof profileDetails> }
    | undefined;
  if (prof?.http && prof.append) {
    const h = prof.http;
    const a = prof.append;
    const top = Object.entries(h.self_ms_per_op_by_group)
      .filter(([k]) => k !== '(idle)')
      .slice(0, 8)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    out.push(
      `profile of the API thread: ${h.busy_ms_per_op} ms busy per HTTP change vs ${a.busy_ms_per_op} ms per ` +
        `direct append; self time per change by group (ms): ${top}.`,
    );
    const inc = h.inclusive_ms_per_op_by_function;
    const named = ['submit', 'validateChangeSet', 'canActivate', 'parseInput', 'jsonParser']
      .filter((k) => inc[k] !== undefined)
      .map((k) => `${k} ${inc[k]}`)
      .join(', ');
    if (named) out.push(`inclusive per HTTP change (ms): ${named}.`);
  }
  const st = d.statements as
    | { http: ReturnType<typeof statementDetails>; append: ReturnType<typeof statementDetails> }
    | undefined;
  if (st) {
    const one = (x: ReturnType<typeof statementDetails>) =>
      `${x.change_sets_per_batch} change sets per batch (${x.batches} batches, ${x.batches_under_lock} under the ` +
      `head lock), write statement ${x.mean_ms.write_change_set} ms, all statements ${x.statement_ms_per_batch} ms ` +
      `per batch; event-loop delay p50 ${x.event_loop_delay_ms.p50} / p99 ${x.event_loop_delay_ms.p99} ms`;
    out.push(
      `group commit, timed from the call to the result on this thread (the round trip plus the wait for the ` +
        `event loop): HTTP path ${one(st.http)}; direct append ${one(st.append)}.`,
    );
  }
  const srv = (d.http as { server_side_ms?: { request: { mean: number }; append: { mean: number } } })
    .server_side_ms;
  if (srv)
    out.push(
      `HTTP latency (mean): client-observed ${http.latency_ms.mean} ms = append() inside the API ` +
        `${srv.append.mean} ms + rest of the server request ${round(srv.request.mean - srv.append.mean, 3)} ms + ` +
        `client and sockets ${round(http.latency_ms.mean - srv.request.mean, 3)} ms.`,
    );
  for (const [name, t] of Object.entries(TARGETS))
    if (m[name] !== undefined && !meetsTarget(m[name]!, t))
      out.push(`${name} MISS (${m[name]} vs ${t.op} ${t.threshold}): see the profile in details.profile.`);
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), DEFAULTS);
  const startedAt = new Date();
  const t0 = nowMs();
  const dbs = new TempDatabases();
  let app: INestApplication | undefined;
  let store: EventStore | undefined;
  let clients: HttpClients | undefined;
  let altClients: HttpClients | undefined;
  let exitCode = 0;
  try {
    const dbH = await dbs.create('bench_api_http');
    const dbA = await dbs.create('bench_api_append');
    const pgVersion = await serverVersion(dbH.url);
    const machine = machineInfo(pgVersion);
    progress(t0, `api bench on ${printMachine(machine)}; databases ${dbH.name}, ${dbA.name}`);
    const settings = await showSettings(dbH.url, [
      'synchronous_commit',
      'fsync',
      'shared_buffers',
      'commit_delay',
    ]);
    for (const db of [dbH, dbA]) {
      await migrateToLatest(db.url);
      await seed(db.url, args);
    }
    progress(t0, `seeded ${args.population} Workloads in each database`);

    // ---- the API, as main.ts starts it, on loopback; its request log lines are JSON-encoded and counted
    let logLines = 0;
    let logBytes = 0;
    const statusCounts: Record<string, number> = {};
    // Server-side timings of the measured HTTP slices: request (log line durationMs) and append() inside it.
    const serverTimes = { recording: false, requestMs: [] as number[], appendMs: [] as number[] };
    app = await createApiApp({
      databaseUrl: dbH.url,
      port: 0,
      host: '127.0.0.1',
      cluster: CLUSTER,
      bootstrapToken: BOOTSTRAP_TOKEN,
      logSink: (line) => {
        logLines++;
        logBytes += JSON.stringify(line).length + 1;
        if (line.msg !== 'request') return;
        statusCounts[String(line.status)] = (statusCounts[String(line.status)] ?? 0) + 1;
        if (serverTimes.recording && line.path === '/v1/changes')
          serverTimes.requestMs.push(Number(line.durationMs));
      },
    });
    await app.listen(0, '127.0.0.1');
    const url = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
    // Times append() inside the API (the store instance the API injected), without changing the API.
    const apiStore = app.get(EventStore);
    const innerAppend = apiStore.append.bind(apiStore);
    apiStore.append = async (changes, opts) => {
      const s0 = nowMs();
      try {
        return await innerAppend(changes, opts);
      } finally {
        if (serverTimes.recording) serverTimes.appendMs.push(nowMs() - s0);
      }
    };
    const tokenRes = await fetch(`${url}/v1/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${BOOTSTRAP_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: OPERATOR, role: 'operator' }),
    });
    if (tokenRes.status !== 201)
      throw new Error(`POST /v1/tokens: ${tokenRes.status} ${await tokenRes.text()}`);
    const operatorToken = ((await tokenRes.json()) as { token: string }).token;
    progress(t0, `API listening on ${url}; operator token created`);

    const primaryClient = clientKind(args);
    const altClient = otherClient(primaryClient);
    clients = new HttpClients({
      url,
      token: operatorToken,
      clients: args.clients,
      population: args.population,
      reason: REASON,
      client: primaryClient,
      generationOffset: 0,
    });
    if (args.compareClient)
      altClients = new HttpClients({
        url,
        token: operatorToken,
        clients: args.clients,
        population: args.population,
        reason: REASON,
        client: altClient,
        generationOffset: 1_000_000,
      });
    store = await openStoreLikeTheApi(dbA.url, 'bench-api-append');
    const theStore = store;
    const seq = new ChangeSequence(args.population);
    let lastAppended = 0;
    const appendOp = async () => {
      const res = await theStore.append([toChange(seq.next())], {
        actor: OPERATOR,
        reason: REASON,
        requestId: randomUUID(),
        traceContext: traceparent(),
        validate,
      });
      if (res.status !== 'appended') throw new Error(`append returned ${res.status}`);
      if (res.changeSet.revision > lastAppended) lastAppended = res.changeSet.revision;
    };

    const theClients = clients;
    const runHttp = async (ms: number, via: HttpClients = theClients): Promise<PathResult> => {
      const elu0 = performance.eventLoopUtilization();
      const cpu0 = cpuSample();
      const r = await via.run(ms);
      const cpu = cpuSince(cpu0);
      return {
        ops: r.ops,
        elapsedMs: r.elapsedMs,
        latencies: r.latencies,
        mainElu: performance.eventLoopUtilization(elu0).utilization,
        processCpuMsPerOp: cpu.processMs / r.ops,
        machineBusy: cpu.machineBusyFraction,
        clientElu: r.clientElu,
      };
    };
    const runAppend = async (ms: number): Promise<PathResult> => {
      const elu0 = performance.eventLoopUtilization();
      const r: ThroughputResult = await runConcurrent({
        writers: args.clients,
        durationMs: ms,
        op: appendOp,
      });
      return {
        ops: r.ops,
        elapsedMs: r.elapsedMs,
        latencies: r.latencies,
        mainElu: performance.eventLoopUtilization(elu0).utilization,
        processCpuMsPerOp: r.cpu.processMs / r.ops,
        machineBusy: r.cpu.machineBusyFraction,
      };
    };

    progress(t0, `warm-up: ${args.warmup} s each, ${args.clients} concurrent`);
    const warm = { http: await runHttp(args.warmup * 1000), append: await runAppend(args.warmup * 1000) };
    if (altClients) await runHttp(args.warmup * 1000, altClients);
    progress(
      t0,
      `warm-up: http ${Math.round((warm.http.ops * 1000) / warm.http.elapsedMs)}/s, ` +
        `append ${Math.round((warm.append.ops * 1000) / warm.append.elapsedMs)}/s`,
    );

    const sliceMs = (args.duration * 1000) / args.rounds;
    let http: PathResult | undefined;
    let append: PathResult | undefined;
    let alt: PathResult | undefined;
    const perRound: Record<string, number>[] = [];
    for (let r = 0; r < args.rounds; r++) {
      await checkpoint(dbH.url);
      serverTimes.recording = true;
      const h = await runHttp(sliceMs);
      serverTimes.recording = false;
      let x: PathResult | undefined;
      if (altClients) {
        await checkpoint(dbH.url);
        x = await runHttp(sliceMs, altClients);
        alt = accumulate(alt, x);
      }
      await checkpoint(dbA.url);
      const a = await runAppend(sliceMs);
      http = accumulate(http, h);
      append = accumulate(append, a);
      perRound.push({
        http_per_s: round((h.ops * 1000) / h.elapsedMs, 4),
        ...(x
          ? { [`http_${altClient.replace('-', '_')}_per_s`]: round((x.ops * 1000) / x.elapsedMs, 4) }
          : {}),
        append_per_s: round((a.ops * 1000) / a.elapsedMs, 4),
      });
      progress(t0, `round ${r + 1}/${args.rounds}: ${JSON.stringify(perRound.at(-1))}`);
    }
    const H = http!;
    const A = append!;
    const httpPerS = (H.ops * 1000) / H.elapsedMs;
    const appendPerS = (A.ops * 1000) / A.elapsedMs;
    const hl = summarize(H.latencies);
    const al = summarize(A.latencies);
    progress(
      t0,
      `http: ${H.ops} changes in ${formatMs(H.elapsedMs)} = ${httpPerS.toFixed(0)}/s (p50 ${hl.p50.toFixed(2)} ms, ` +
        `p99 ${hl.p99.toFixed(2)} ms); append: ${A.ops} in ${formatMs(A.elapsedMs)} = ${appendPerS.toFixed(0)}/s ` +
        `(p50 ${al.p50.toFixed(2)} ms, p99 ${al.p99.toFixed(2)} ms)`,
    );

    // ---- where the time goes: the main thread under the V8 profiler, one extra run per path
    let profile: Record<string, unknown> | undefined;
    if (args.profileSeconds > 0) {
      const dir = os.tmpdir();
      const ms = args.profileSeconds * 1000;
      const ph = await withCpuProfile(() => runHttp(ms), {
        file: path.join(dir, `bench-api-http-${process.pid}.cpuprofile`),
      });
      const pa = await withCpuProfile(() => runAppend(ms), {
        file: path.join(dir, `bench-api-append-${process.pid}.cpuprofile`),
      });
      const opts = { top: 25, marks: PROFILE_MARKS, minGroupMs: 1 };
      profile = {
        note:
          'extra runs (not in the rates), main thread only (the API server; the clients are in a worker), ' +
          'V8 sampling profiler at 200 us; ms per change. Raw .cpuprofile files: ' +
          `${path.join(dir, `bench-api-{http,append}-${process.pid}.cpuprofile`)}`,
        http_per_s_while_profiled: round((ph.value.ops * 1000) / ph.value.elapsedMs, 4),
        append_per_s_while_profiled: round((pa.value.ops * 1000) / pa.value.elapsedMs, 4),
        http: profileDetails(summarizeProfile(ph.profile, opts), ph.value.ops),
        append: profileDetails(summarizeProfile(pa.profile, opts), pa.value.ops),
      };
      progress(t0, `profiled ${args.profileSeconds} s of each path`);
    }

    // ---- inside the head lock: statements of the group commit, timed from call to result, per path
    let statements: Record<string, unknown> | undefined;
    if (args.profileSeconds > 0) {
      const ms = args.profileSeconds * 1000;
      const sh = await withLoopDelay(() => profileStatements(classifyStatement, () => runHttp(ms)));
      const sa = await withLoopDelay(() => profileStatements(classifyStatement, () => runAppend(ms)));
      statements = {
        note:
          'extra runs (not in the rates): every pg query of this process timed from call to result, which ' +
          "includes the wait for this thread's event loop to pick the result up: a busy loop stretches every " +
          'round trip of a group-committed batch (one autocommitted write statement, or BEGIN, lock, write, COMMIT ' +
          'when the store had to take the head lock). Event-loop delay of the main thread sampled every 1 ms.',
        http: statementDetails(sh.value.value.ops, sh.value.stats, sh.delay),
        append: statementDetails(sa.value.value.ops, sa.value.stats, sa.delay),
      };
      progress(t0, `timed the statements of ${args.profileSeconds} s of each path`);
    }

    // ---- both logs are intact: gap-free revisions, chain verified
    const verifyHttp = await fetch(`${url}/v1/audit/verify`, {
      headers: { authorization: `Bearer ${operatorToken}` },
    });
    const verifyHttpBody = (await verifyHttp.json()) as Record<string, unknown>;
    const verifyAppend = await store.verify();
    if (verifyHttp.status !== 200 || verifyHttpBody.ok !== true || !verifyAppend.ok)
      throw new Error(`chain verification failed: ${JSON.stringify({ verifyHttpBody, verifyAppend })}`);

    const metrics: Record<string, number> = {
      http_changes_per_s: round(httpPerS, 4),
      append_per_s: round(appendPerS, 4),
      http_vs_append_ratio: round(httpPerS / appendPerS, 3),
      http_p50_ms: round(hl.p50, 4),
      http_p99_ms: round(hl.p99, 4),
      append_p50_ms: round(al.p50, 4),
      append_p99_ms: round(al.p99, 4),
    };
    if (alt) {
      const k = altClient.replace('-', '_');
      const altPerS = (alt.ops * 1000) / alt.elapsedMs;
      metrics[`http_${k}_client_changes_per_s`] = round(altPerS, 4);
      metrics[`http_${k}_client_vs_append_ratio`] = round(altPerS / appendPerS, 3);
      metrics[`http_${k}_client_p50_ms`] = round(summarize(alt.latencies).p50, 4);
      metrics[`http_${k}_client_p99_ms`] = round(summarize(alt.latencies).p99, 4);
    }
    const details: Record<string, unknown> = {
      http: {
        ...pathDetails(H),
        server_side_ms: {
          note:
            'request: from the API request middleware to the response finished (its log line durationMs); ' +
            'append: EventStore.append() inside the API; client-observed minus request is client + socket time',
          request: roundSummary(summarize(serverTimes.requestMs), 3),
          append: roundSummary(summarize(serverTimes.appendMs), 3),
        },
      },
      append: pathDetails(A),
      ...(alt ? { [`http_${altClient.replace('-', '_')}_client`]: pathDetails(alt) } : {}),
      rounds: perRound,
      warmup: {
        http_per_s: round((warm.http.ops * 1000) / warm.http.elapsedMs, 4),
        append_per_s: round((warm.append.ops * 1000) / warm.append.elapsedMs, 4),
      },
      api_log: { lines: logLines, bytes: logBytes, request_statuses: statusCounts },
      verify: { http_db: verifyHttpBody, append_db: verifyAppend },
      profile,
      statements,
      postgres_settings: settings,
      load_average_at_end: os.loadavg().map((x) => round(x, 3)),
    };
    details.findings = findings(metrics, details);
    const durationMs = nowMs() - t0;
    const file = writeResults({
      benchmark: 'api',
      metrics,
      targets: TARGETS,
      params: {
        ...args,
        change:
          'one Workload put per change (update of a seeded workload: new labels.version and weight), ' +
          'reason + traceparent set; 127.0.1.x addresses',
        http_path:
          'POST /v1/changes {reason, apply:[workload]} with an operator token (Authorization: Bearer), ' +
          `${CLIENT_NAMES[clientKind(args)]} from a worker ` +
          'thread; every response checked for 201',
        ...(args.compareClient
          ? {
              compared_client:
                `the same HTTP load from a second worker using ${CLIENT_NAMES[otherClient(clientKind(args))]}, ` +
                'interleaved with the others against the same API and database (its own generation range, so no ' +
                'change repeats a spec): how much of the HTTP cost is the load generator sharing the 2 cores',
            }
          : {}),
        append_path:
          'EventStore.append([change], {actor, reason, requestId, traceContext, validate}) with the ' +
          "API's validate hook (validateChangeSet); store opened with the API's options (default pool)",
        api_logging:
          'the API request log lines are JSON-encoded as in production (stdout sink) and counted, not written',
        slices: `${args.rounds} alternating slices of ${sliceMs / 1000} s per path, CHECKPOINT before each`,
        databases: 'one fresh database per path on the same server, both seeded with the same population',
      },
      details,
      machine,
      startedAt,
      durationMs,
    });
    process.stdout.write(`\napi on ${printMachine(machine)}\n\n${formatTable(metrics, TARGETS)}\n\n`);
    for (const f of details.findings as string[]) process.stdout.write(`- ${f}\n`);
    process.stdout.write(`\nwritten ${file} in ${formatMs(durationMs)}\n`);
  } catch (err) {
    process.stderr.write(`api bench failed: ${(err as Error).stack ?? String(err)}\n`);
    exitCode = 1;
  } finally {
    await clients?.close().catch(() => undefined);
    await altClients?.close().catch(() => undefined);
    await app?.close().catch(() => undefined);
    await store?.close().catch(() => undefined);
    await dbs.dropAll();
  }
  process.exitCode = exitCode;
}

if (require.main === module) void main();
