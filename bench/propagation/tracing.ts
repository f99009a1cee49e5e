/**
 * `tracing_overhead_ratio` (issue 6): p50 commit-to-applied latency with tracing on / p50 with
 * tracing off, measured in the same run on the same machine state.
 *
 * The real services run as child processes from dist/ (auto-instrumentation patches http,
 * express, nest and pg only in a process that started the SDK first): the API, the relay and
 * `agents` agents (memory backend). A change is POST /v1/changes (one Workload's weight), and it
 * is applied when every agent has logged `applied` for its revision (their stdout, read as it
 * comes). "On": OTEL_EXPORTER_OTLP_ENDPOINT at a local OTLP/HTTP receiver (http/protobuf, the
 * default, batched as in production), OTEL_TRACES_SAMPLER=always_on. "Off": no OTEL_* at all.
 * Both stacks run at once and take turns (off, on, on, off, ...), one change at a time, so drift
 * of the machine hits both sides alike.
 *
 * Plugs into bench/propagation.ts:
 *   mergeExtraRun(metrics, details, 'tracing', await runTracingOverhead({ dbs, nc, jsm, t0 }));
 * and runs alone: `npm run -s build && node dist/bench/propagation/tracing.js [--changes=40]`.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { connectNats, statusBucket, streamName } from '@meshplane/messaging';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { onLines, spawnTracked, terminate } from '../../test/harness/processes';
import { nowMs, parseArgs, progress, round, summarize, TempDatabases } from '../lib';
import type { ExtraRunResult } from './report';

// The services of the build this file belongs to (dist/, or a private --outDir): compiled, this
// file is <out>/bench/propagation/tracing.js; run from the sources it uses the repo's dist/.
const OUT = __filename.endsWith('.js')
  ? path.resolve(__dirname, '..', '..')
  : path.resolve(__dirname, '..', '..', 'dist');
const DIST = (service: string) => path.join(OUT, 'services', service, 'src', 'main.js');
const NATS_URL = process.env.NATS_URL || 'nats://127.0.0.1:4222';
const TOKEN = 'bench-tracing-bootstrap-token-0123456789';

export const TRACING_DEFAULTS = {
  agents: 3,
  /** Measured changes per side. */
  changes: 100,
  /** Unmeasured changes after start-up (JIT, pools, first exports). */
  warmup: 5,
  gapMs: 20,
};
export type TracingArgs = typeof TRACING_DEFAULTS;

export interface TracingRunInput {
  dbs: TempDatabases;
  nc: NatsConnection;
  jsm: JetStreamManager;
  t0: number;
  args?: Partial<TracingArgs>;
}

/** A local OTLP/HTTP endpoint that accepts every export (an empty protobuf body is an empty response). */
async function startSink(): Promise<{
  url: string;
  requests: number;
  bytes: number;
  close(): Promise<void>;
}> {
  const sink = { url: '', requests: 0, bytes: 0, close: async (): Promise<void> => {} };
  const server = http.createServer((req, res) => {
    req.on('data', (c: Buffer) => {
      sink.bytes += c.length;
    });
    req.on('end', () => {
      sink.requests++;
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  sink.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  sink.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return sink;
}

interface Proc {
  name: string;
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
  stderr: string;
  onLine?: (l: Record<string, unknown>) => void;
}

function spawnService(name: string, service: string, env: Record<string, string>): Proc {
  // Only what this run sets: no MESH_* or OTEL_* of the calling shell leaks in.
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('MESH_') && !k.startsWith('OTEL_')),
  );
  const child = spawnTracked(process.execPath, [DIST(service)], {
    cwd: OUT,
    env: { ...base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const p: Proc = { name, child, lines: [], stderr: '' };
  onLines(child.stdout!, (l) => {
    if (!l) return; // not a log line
    p.lines.push(l);
    p.onLine?.(l);
  });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    p.stderr = (p.stderr + c).slice(-2000);
  });
  return p;
}

function until<T>(what: string, timeoutMs: number, check: () => T | undefined, procs: Proc[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      const dead = procs.find((p) => p.child.exitCode !== null);
      if (dead)
        return reject(
          new Error(
            `${dead.name} exited (code ${dead.child.exitCode}) waiting for ${what}: ${dead.stderr.slice(-600)}`,
          ),
        );
      const v = check();
      if (v !== undefined) return resolve(v);
      if (Date.now() - started > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

interface Stack {
  tracing: boolean;
  /** One change, from the POST to every agent's `applied`, and the POST alone (the API's answer), in ms. */
  measure(): Promise<{ ms: number; postMs: number }>;
  stop(): Promise<void>;
}

/** One stack (API, relay, agents) over its own database and cluster, warmed up. */
async function startStack(
  tracing: boolean,
  a: TracingArgs,
  input: TracingRunInput,
  sinkUrl: string,
): Promise<Stack> {
  const cluster = `trc-${randomBytes(4).toString('hex')}`;
  const db = await input.dbs.create('bench_tracing');
  const procs: Proc[] = [];
  const otel = (service: string): Record<string, string> =>
    tracing
      ? {
          OTEL_SERVICE_NAME: service,
          OTEL_EXPORTER_OTLP_ENDPOINT: sinkUrl,
          OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
          OTEL_TRACES_SAMPLER: 'always_on',
        }
      : {};
  const stop = async () => {
    await Promise.all(procs.map((p) => terminate(p.child, { timeoutMs: 12_000 }).catch(() => undefined)));
    await input.jsm.streams.delete(streamName(cluster)).catch(() => undefined);
    await input.jsm.streams.delete(`KV_${statusBucket(cluster)}`).catch(() => undefined);
    await input.dbs.drop(db).catch(() => undefined);
  };
  try {
    const api = spawnService('api', 'api', {
      ...otel('meshplane-api'),
      DATABASE_URL: db.url,
      MESH_CLUSTER: cluster,
      NATS_URL,
      MESH_API_PORT: '0',
      MESH_API_HOST: '127.0.0.1',
      MESH_BOOTSTRAP_TOKEN: TOKEN,
    });
    procs.push(api);
    const port = await until(
      'the API to listen',
      60_000,
      () => api.lines.find((l) => l.msg === 'listening')?.port as number | undefined,
      procs,
    );
    const apiUrl = `http://127.0.0.1:${port}`;
    procs.push(
      spawnService('relay', 'relay', {
        ...otel('meshplane-relay'),
        MESH_CLUSTER: cluster,
        DATABASE_URL: db.url,
        NATS_URL,
        MESH_RELAY_INSTANCE: `bench-${cluster}`,
      }),
    );
    // Applied revision per agent, updated as their log lines arrive.
    const applied = new Map<string, number>();
    let waiter: (() => void) | undefined;
    for (let i = 1; i <= a.agents; i++) {
      const node = `n${i}`;
      const p = spawnService(node, 'agent', {
        ...otel('meshplane-agent'),
        MESH_NODE: node,
        MESH_CLUSTER: cluster,
        NATS_URL,
        MESH_API_URL: apiUrl,
        MESH_TOKEN: TOKEN,
        MESH_DATAPLANE: 'memory',
        MESH_HEARTBEAT_MS: '5000',
      });
      p.onLine = (l) => {
        if (l.msg !== 'applied' || typeof l.revision !== 'number') return;
        applied.set(node, Math.max(applied.get(node) ?? 0, l.revision));
        waiter?.();
      };
      procs.push(p);
    }
    const allApplied = (rev: number) =>
      applied.size === a.agents && [...applied.values()].every((r) => r >= rev);

    let k = 0;
    const change = async (): Promise<number> => {
      k++;
      const body = {
        reason: 'bench: tracing overhead',
        apply: [
          {
            kind: 'Service',
            name: 'bench',
            spec: {
              vip: '127.100.9.1',
              ports: [{ port: 9080, protocol: 'TCP' }],
              selector: { app: 'bench' },
            },
          },
          {
            kind: 'Workload',
            name: `bench-${k % 3}`,
            spec: {
              address: `127.0.1.${10 + (k % 3)}`,
              node: `n${(k % a.agents) + 1}`,
              labels: { app: 'bench', version: 'v1' },
              identity: 'bench',
              weight: (Math.floor(k / 3) % 4) + 1,
            },
          },
        ],
      };
      const res = await fetch(`${apiUrl}/v1/changes`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      if (res.status !== 201 && res.status !== 200)
        throw new Error(`POST /v1/changes: ${res.status} ${text}`);
      return (JSON.parse(text) as { revision: number }).revision;
    };
    const untilApplied = (rev: number) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`revision ${rev} not applied by every agent in 30 s`)),
          30_000,
        );
        const check = () => {
          if (!allApplied(rev)) return;
          clearTimeout(timer);
          waiter = undefined;
          resolve();
        };
        waiter = check;
        check();
      });

    // The first change also waits for the stream, the relay and every agent to be up.
    const first = await change();
    await until(
      'every agent to apply the first change',
      90_000,
      () => (allApplied(first) ? true : undefined),
      procs,
    );
    for (let i = 0; i < a.warmup; i++) await untilApplied(await change());
    return {
      tracing,
      async measure() {
        const t = nowMs();
        const rev = await change();
        const postMs = nowMs() - t;
        await untilApplied(rev);
        return { ms: nowMs() - t, postMs };
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

export async function runTracingOverhead(input: TracingRunInput): Promise<ExtraRunResult> {
  const a: TracingArgs = { ...TRACING_DEFAULTS, ...input.args };
  const sink = await startSink();
  const loadBefore = os.loadavg();
  try {
    const off: number[] = [];
    const on: number[] = [];
    // The POST's own share (API: validate, append, answer), to tell the API's overhead from the rest.
    const postOff: number[] = [];
    const postOn: number[] = [];
    // Both stacks run side by side and take turns, one change at a time (off, on, on, off, ...):
    // each pair of samples sees the same machine state, which a shared 2-core machine is not
    // from one minute to the next.
    const stacks: Stack[] = [];
    try {
      stacks.push(await startStack(false, a, input, sink.url));
      stacks.push(await startStack(true, a, input, sink.url));
      progress(input.t0, `tracing: both stacks up (${a.agents} agents each); ${a.changes} changes per side`);
      for (let i = 0; i < a.changes; i++) {
        for (const stack of i % 2 === 0 ? stacks : [...stacks].reverse()) {
          await new Promise((r) => setTimeout(r, a.gapMs));
          const m = await stack.measure();
          (stack.tracing ? on : off).push(m.ms);
          (stack.tracing ? postOn : postOff).push(m.postMs);
        }
      }
    } finally {
      for (const stack of stacks) await stack.stop();
    }
    progress(
      input.t0,
      `tracing off p50 ${round(summarize(off).p50, 2)} ms, on p50 ${round(summarize(on).p50, 2)} ms`,
    );
    if (sink.requests === 0) throw new Error('tracing on, but no OTLP export reached the local receiver');
    const sOff = summarize(off);
    const sOn = summarize(on);
    const ratio = sOn.p50 / sOff.p50;
    return {
      metrics: {
        tracing_overhead_ratio: round(ratio, 3),
        tracing_on_p50_ms: round(sOn.p50, 2),
        tracing_off_p50_ms: round(sOff.p50, 2),
      },
      details: {
        method:
          'real processes from dist/ (API, relay, agents on the memory backend); POST /v1/changes to the last agent ' +
          "logging `applied`; tracing on = OTLP http/protobuf to a local receiver, always_on sampling, the SDK's " +
          'default batching; both stacks up at once, taking turns one change at a time',
        params: a,
        off: sOff,
        on: sOn,
        post_ms: { off: summarize(postOff), on: summarize(postOn) },
        otlp_requests: sink.requests,
        otlp_bytes: sink.bytes,
        load_average_before: loadBefore.map((x) => round(x, 2)),
        load_average_after: os.loadavg().map((x) => round(x, 2)),
      },
    };
  } finally {
    await sink.close();
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), TRACING_DEFAULTS);
  const t0 = nowMs();
  const dbs = new TempDatabases();
  const nc = await connectNats(NATS_URL, { name: 'bench-tracing', firstConnectTimeoutMs: 10_000 });
  try {
    const r = await runTracingOverhead({ dbs, nc, jsm: await jetstreamManager(nc), t0, args });
    process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  } finally {
    await nc.close().catch(() => undefined);
    await dbs.dropAll();
  }
}

if (require.main === module)
  main().catch((err) => {
    process.stderr.write(`tracing bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
