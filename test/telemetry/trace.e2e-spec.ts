/*
 * One change, one trace (issue 6): the API, the relay and two agents run as REAL processes from
 * dist/ (auto-instrumentation does not patch modules Jest loads) and export OTLP/HTTP JSON to a
 * receiver on loopback. The trace must run API server span → mesh.change.append (pg spans under
 * it) → relay mesh.revision.publish (child of the stored context) → one mesh.revision.apply per
 * node (child of the publish span) with compile, diff and map-write children. A failed apply
 * (the memory backend cannot persist its maps) shows up as an error span with the reason.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  createTestDatabase,
  freePort,
  spawnTracked,
  type TestDatabase,
  terminate,
  waitFor,
} from '../harness';
import {
  type AgentNode,
  cleanupAll,
  deleteClusterStreams,
  pipelineProcesses,
  removeTempDir,
  type ServiceProcess,
  type StatusReader,
  service,
  startPipeline,
  statusReader,
  TOKEN,
  tempDir,
  waitForApplied,
  workload,
} from '../propagation/helpers';
import { randomCluster } from '../relay/helpers';
import { ancestors, type OtlpReceiver, type ReceivedSpan, startOtlpReceiver, traceOf } from './otlp-receiver';

const ROOT = path.resolve(__dirname, '..', '..');
const NATS_URL = process.env.NATS_URL || 'nats://127.0.0.1:4222';
const cluster = randomCluster('tel');
const NODES = ['n1', 'n2'];
const SERVER = 2; // SpanKind.SERVER in OTLP
const ERROR = 2; // StatusCode.ERROR in OTLP

let receiver: OtlpReceiver | undefined;
let db: TestDatabase | undefined;
let dir: string | undefined;
let api: { child: ChildProcess; url: string; logs: string[] } | undefined;
let relay: ServiceProcess | undefined;
let reader: StatusReader | undefined;
const agents: AgentNode[] = [];
const metricsPorts = new Map<string, number>();

function otelEnv(serviceName: string): Record<string, string> {
  return {
    OTEL_SERVICE_NAME: serviceName,
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver!.endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_TRACES_SAMPLER: 'always_on',
    // Export within 100 ms instead of 5 s: the test waits for spans, not for a timer.
    OTEL_BSP_SCHEDULE_DELAY: '100',
  };
}

/** The API as a child process from dist/ (built by `npm run build`), on a free loopback port. */
async function startApiProcess(databaseUrl: string): Promise<NonNullable<typeof api>> {
  const main = path.join(ROOT, 'dist/services/api/src/main.js');
  if (!fs.existsSync(main)) throw new Error(`${main} is missing: run npm run build first`);
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('MESH_') && !k.startsWith('OTEL_')),
  );
  const child = spawnTracked(process.execPath, [main], {
    cwd: ROOT,
    env: {
      ...env,
      ...otelEnv('meshplane-api'),
      DATABASE_URL: databaseUrl,
      MESH_CLUSTER: cluster,
      NATS_URL,
      MESH_API_PORT: '0',
      MESH_API_HOST: '127.0.0.1',
      MESH_BOOTSTRAP_TOKEN: TOKEN,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  let port: number | undefined;
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    for (const line of chunk.split('\n').filter(Boolean)) {
      logs.push(line);
      try {
        const l = JSON.parse(line) as { msg?: string; port?: number };
        if (l.msg === 'listening') port = l.port;
      } catch {
        // not JSON
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => logs.push(c));
  await waitFor(
    () => {
      if (child.exitCode !== null)
        throw Object.assign(new Error(`api exited: ${logs.join('\n')}`), { fatal: true });
      return port;
    },
    { timeoutMs: 60_000, what: 'the API to listen' },
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${logs.slice(-20).join('\n')}`);
  });
  return { child, url: `http://127.0.0.1:${port}`, logs };
}

// biome-ignore lint/suspicious/noExplicitAny: responses are asserted field by field
async function call(method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(api!.url + p, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function commit(apply: unknown[], reason: string): Promise<number> {
  const r = await call('POST', '/v1/changes', { reason, apply });
  if (r.status !== 201) throw new Error(`POST /v1/changes: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.revision as number;
}

const applySpans = (revision: number, node?: string) =>
  receiver!.spans.filter(
    (s) =>
      s.name === 'mesh.revision.apply' &&
      s.attributes['mesh.revision'] === revision &&
      (node === undefined || s.attributes['mesh.node'] === node),
  );

/** Waits until `n` spans match; the exporters batch every 100 ms. */
async function spansWhere(what: string, pred: (s: ReceivedSpan) => boolean, n = 1): Promise<ReceivedSpan[]> {
  return waitFor(
    () => {
      const found = receiver!.spans.filter(pred);
      return found.length >= n ? found : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 100, what },
  ).catch((err: Error) => {
    const seen = receiver!.spans.map((s) => `${s.service}:${s.name}:${s.attributes['mesh.revision'] ?? ''}`);
    throw new Error(
      `${err.message}; received: ${seen.join(', ')}; rejected: ${receiver!.rejected.join(', ')}`,
    );
  });
}

async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5_000) });
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
}

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  dir = tempDir('telemetry');
  db = await createTestDatabase('telemetry');
  api = await startApiProcess(db.url);
  reader = await statusReader(NATS_URL, cluster);
  const relayPort = await freePort();
  metricsPorts.set('relay', relayPort);
  const pipeline = pipelineProcesses({
    cluster,
    databaseUrl: db.url,
    natsUrl: NATS_URL,
    apiUrl: api.url,
    nodes: NODES,
    dir,
    relayEnv: { MESH_METRICS_PORT: String(relayPort), ...otelEnv('meshplane-relay') },
  });
  relay = pipeline.relay;
  for (const agent of pipeline.agents) {
    const port = await freePort();
    metricsPorts.set(agent.node, port);
    Object.assign(agent.env, otelEnv(`meshplane-agent-${agent.node}`), { MESH_METRICS_PORT: String(port) });
    agents.push(agent);
  }
  await startPipeline(pipeline, reader);
}, 120_000);

afterAll(async () => {
  await cleanupAll([
    ['agents', () => Promise.all(agents.map((a) => a.stop()))],
    ['relay', () => relay?.stop()],
    ['api', () => (api ? terminate(api.child, { timeoutMs: 12_000 }) : undefined)],
    ['stream and bucket', () => deleteClusterStreams(reader, NATS_URL, cluster)],
    ['database', () => db?.drop()],
    ['receiver', () => receiver?.close()],
    ['temp dir', () => removeTempDir(dir)],
  ]);
}, 90_000);

describe('one change is one trace, from the API call to every node', () => {
  let revision: number;
  let traceId: string;

  beforeAll(async () => {
    revision = await commit(
      [
        service('reviews', '127.100.6.1'),
        workload('reviews-1', '127.0.1.61', 'n1', 'reviews'),
        workload('reviews-2', '127.0.1.62', 'n2', 'reviews'),
      ],
      'telemetry e2e',
    );
    await waitForApplied(reader!, agents, revision);
    const [n1] = await spansWhere('apply span on n1', (s) => applySpans(revision, 'n1').includes(s));
    await spansWhere('apply span on n2', (s) => applySpans(revision, 'n2').includes(s));
    traceId = n1!.traceId;
    // The API's server span ends after its response: wait for it and the map writes too.
    await spansWhere('the API server span', (s) => s.traceId === traceId && s.kind === SERVER);
    await spansWhere(
      'map writes on both nodes',
      (s) => s.traceId === traceId && s.name === 'mesh.map.write',
      2,
    );
  }, 60_000);

  it('puts spans of all four processes under one trace id', () => {
    const services = new Set([...traceOf(receiver!.spans, traceId).values()].map((s) => s.service));
    expect([...services].sort()).toEqual([
      'meshplane-agent-n1',
      'meshplane-agent-n2',
      'meshplane-api',
      'meshplane-relay',
    ]);
    expect(receiver!.rejected).toEqual([]);
  });

  it('links API server span → append (with pg spans) → publish → one apply per node → compile, diff, map write', () => {
    const t = traceOf(receiver!.spans, traceId);
    const all = [...t.values()];
    const server = all.filter((s) => s.service === 'meshplane-api' && s.kind === SERVER);
    expect(server).toHaveLength(1);
    expect(server[0]!.parentSpanId).toBeUndefined(); // the trace starts at the API call
    // Named after the route Express matched (the http instrumentation's hook, sdk.ts).
    expect(server[0]).toMatchObject({
      name: 'POST /v1/changes',
      attributes: { 'http.route': '/v1/changes' },
    });

    const [append, ...moreAppends] = all.filter((s) => s.name === 'mesh.change.append');
    expect(moreAppends).toEqual([]);
    expect(append).toMatchObject({ service: 'meshplane-api', attributes: { 'mesh.revision': revision } });
    // Its parent is the server span itself: the request's context is handed on explicitly.
    expect(append!.parentSpanId).toBe(server[0]!.spanId);
    // The append's queries are pg spans under it (authentication may query outside it: its cache expires).
    const pg = all.filter(
      (s) =>
        s.service === 'meshplane-api' &&
        (s.attributes['db.system.name'] ?? s.attributes['db.system']) === 'postgresql',
    );
    const appendQueries = pg.filter((s) => ancestors(t, s).includes(append!)).map((s) => s.name);
    expect(appendQueries).toEqual(expect.arrayContaining([expect.stringMatching(/^pg\.query:COMMIT/)]));

    const publish = all.filter((s) => s.name === 'mesh.revision.publish');
    expect(publish).toHaveLength(1);
    expect(publish[0]).toMatchObject({
      service: 'meshplane-relay',
      parentSpanId: append!.spanId, // the context stored with the change set
      attributes: { 'mesh.revision': revision, 'mesh.cluster': cluster },
    });

    for (const node of NODES) {
      const applies = all.filter(
        (s) => s.name === 'mesh.revision.apply' && s.attributes['mesh.node'] === node,
      );
      expect({ node, applies: applies.length }).toEqual({ node, applies: 1 });
      const apply = applies[0]!;
      expect(apply).toMatchObject({
        service: `meshplane-agent-${node}`,
        parentSpanId: publish[0]!.spanId,
        status: { code: 0 },
        attributes: { 'mesh.revision': revision, 'mesh.cluster': cluster, 'mesh.node': node },
        resource: { 'mesh.node': node, 'mesh.cluster': cluster },
      });
      expect(apply.attributes['mesh.lag_ms']).toEqual(expect.any(Number));
      const children = all.filter((s) => s.parentSpanId === apply.spanId).map((s) => s.name);
      expect(children.sort()).toEqual(['mesh.compile', 'mesh.diff', 'mesh.map.write']);
      const write = all.find((s) => s.parentSpanId === apply.spanId && s.name === 'mesh.map.write')!;
      // This node's workload and the service: writes to the services and backends maps at least.
      expect(write.attributes['mesh.ops.mesh_services']).toBeGreaterThan(0);
      expect(write.attributes['mesh.ops']).toBeGreaterThan(0);
    }
  });

  it('GET /v1/revisions/:rev/propagation carries the trace id', async () => {
    const r = await call('GET', `/v1/revisions/${revision}/propagation`);
    expect(r.status).toBe(200);
    expect(r.body.traceId).toBe(traceId);
    // Each node applied this revision on its own, so the row says when it arrived there too.
    expect(r.body.nodes).toHaveLength(NODES.length);
    for (const n of r.body.nodes) {
      expect(n.state).toBe('APPLIED');
      const received = Date.parse(n.receivedAt);
      expect(received).toBeGreaterThanOrEqual(Date.parse(r.body.publishedAt));
      expect(received).toBeLessThanOrEqual(Date.parse(n.appliedAt));
    }
  });

  it('serves Prometheus metrics on the relay and on each agent', async () => {
    const relayText = await scrape(metricsPorts.get('relay')!);
    expect(relayText).toMatch(
      new RegExp(`^mesh_relay_published_revision\\{cluster="${cluster}"\\} ${revision}$`, 'm'),
    );
    expect(relayText).toMatch(/^mesh_relay_lag_revisions\{[^}]*\} 0$/m);
    for (const node of NODES) {
      const text = await scrape(metricsPorts.get(node)!);
      const labels = `node="${node}",cluster="${cluster}"`;
      expect(text).toContain(`mesh_applied_revision{${labels}} ${revision}`);
      expect(text).toContain(`mesh_head_revision{${labels}} ${revision}`);
      expect(text).toMatch(new RegExp(`^mesh_propagation_seconds_count\\{${labels}\\} [1-9]`, 'm'));
      expect(text).toMatch(
        new RegExp(`^mesh_map_ops_total\\{${labels},map="mesh_services",action="update"\\} [1-9]`, 'm'),
      );
    }
  });
});

describe('a rollback', () => {
  it('links its change span to the trace of the revision it restores', async () => {
    const first = await commit([service('details', '127.100.6.3')], 'telemetry e2e: before rollback');
    const [firstAppend] = await spansWhere(
      'the append span of the revision to restore',
      (s) => s.name === 'mesh.change.append' && s.attributes['mesh.revision'] === first,
    );
    await commit([service('details', '127.100.6.4')], 'telemetry e2e: to be rolled back');
    const r = await call('POST', '/v1/rollback', { toRevision: first, reason: 'telemetry e2e: rollback' });
    expect(r.status).toBe(201);
    const [append] = await spansWhere(
      'the rollback append span',
      (s) => s.name === 'mesh.change.append' && s.attributes['mesh.revision'] === r.body.revision,
    );
    expect(append!.attributes['mesh.restored_from_revision']).toBe(first);
    expect(append!.traceId).not.toBe(firstAppend!.traceId);
    expect(append!.links).toEqual([
      { traceId: firstAppend!.traceId, spanId: firstAppend!.spanId, attributes: { 'mesh.revision': first } },
    ]);
    await waitForApplied(reader!, agents, r.body.revision);
  }, 60_000);
});

describe('a failed apply', () => {
  it('is an error span with the reason on the node that failed', async () => {
    const n2 = agents.find((a) => a.node === 'n2')!;
    // The memory backend persists through `<file>.<pid>.tmp`: a directory there makes every
    // write of n2 fail (EISDIR, also for root) until it is removed.
    const blocker = `${n2.opts.stateFile}.${n2.pid}.tmp`;
    fs.mkdirSync(blocker);
    let revision: number;
    try {
      revision = await commit([service('ratings', '127.100.6.2')], 'telemetry e2e: failing apply');
      const [failed] = await spansWhere(
        'an error apply span on n2',
        (s) => applySpans(revision, 'n2').includes(s) && s.status.code === ERROR,
      );
      expect(failed!.status.message).toMatch(/EISDIR/);
      expect(
        failed!.events.some(
          (e) => e.name === 'exception' && /EISDIR/.test(String(e.attributes['exception.message'])),
        ),
      ).toBe(true);
      const [write] = await spansWhere(
        'the failed map write on n2',
        (s) => s.parentSpanId === failed!.spanId && s.name === 'mesh.map.write',
      );
      expect(write!.status).toMatchObject({ code: ERROR, message: expect.stringMatching(/EISDIR/) });
      // n1 applied the same revision without an error, in the same trace.
      const [ok] = await spansWhere('the apply span on n1', (s) => applySpans(revision, 'n1').includes(s));
      expect(ok).toMatchObject({ traceId: failed!.traceId, status: { code: 0 } });
    } finally {
      fs.rmdirSync(blocker);
    }
    // The reconciler retries: once the file can be written again the node catches up.
    await waitForApplied(reader!, agents, revision!);
  }, 60_000);
});
