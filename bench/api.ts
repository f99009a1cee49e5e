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
 *
 * Options and their defaults: DEFAULTS in bench/api/args.ts.
 */
import { type EventStore, migrateToLatest } from '@meshplane/event-store';
import type { INestApplication } from '@nestjs/common';
import { clientKind, DEFAULTS, otherClient, REASON, TARGETS } from './api/args';
import { HttpClients } from './api/clients';
import { profilePaths, timeStatements } from './api/diagnostics';
import { accumulate, appendRunner, httpRunner, type PathResult, pathDetails } from './api/paths';
import { describeRun, findings } from './api/report';
import { startApi } from './api/server';
import { openStoreLikeTheApi, seed } from './api/store';
import {
  checkpoint,
  closeDetails,
  formatMs,
  machineInfo,
  nowMs,
  parseArgs,
  printMachine,
  progress,
  round,
  roundSummary,
  serverVersion,
  showSettings,
  summarize,
  TempDatabases,
  writeAndPrint,
} from './lib';

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
    const api = await startApi(dbH.url, (a) => {
      app = a;
    });
    const { url, operatorToken, serverTimes } = api;
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
    const runHttp = httpRunner(clients);
    const runAppend = appendRunner(store, args.population, args.clients);

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
      profile = await profilePaths(runHttp, runAppend, args.profileSeconds);
      progress(t0, `profiled ${args.profileSeconds} s of each path`);
    }

    // ---- inside the head lock: statements of the group commit, timed from call to result, per path
    let statements: Record<string, unknown> | undefined;
    if (args.profileSeconds > 0) {
      statements = await timeStatements(runHttp, runAppend, args.profileSeconds);
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
      api_log: { lines: api.log.lines, bytes: api.log.bytes, request_statuses: api.log.statusCounts },
      verify: { http_db: verifyHttpBody, append_db: verifyAppend },
      profile,
      statements,
      postgres_settings: settings,
    };
    closeDetails(metrics, details, findings);
    writeAndPrint(
      {
        benchmark: 'api',
        metrics,
        targets: TARGETS,
        params: describeRun(args, sliceMs),
        details,
        machine,
        startedAt,
        durationMs: nowMs() - t0,
      },
      `api on ${printMachine(machine)}`,
    );
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
