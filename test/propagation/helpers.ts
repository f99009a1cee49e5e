import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  compile,
  countEntries,
  diffMapSets,
  halfAppliedServices,
  IdAllocator,
  type MapSet,
  MemoryMapBackend,
  type Meta,
  readMaps,
} from '@meshplane/dataplane';
import { type MeshState, refKey, type StoredResource } from '@meshplane/domain';
import { migrateToLatest } from '@meshplane/event-store';
import { decodeNodeStatus, type NodeStatus, provisionStatusBucket } from '@meshplane/messaging';
import { jetstream } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { INestApplication } from '@nestjs/common';
import { createApiApp } from '../../services/api/src/app';
import {
  keepDirAtExit,
  kill9Child,
  removeDirAtExit,
  sleep,
  spawnTracked,
  terminate,
  waitFor,
} from '../harness';
import { type NatsTools, natsTools } from '../relay/helpers';

/*
 * Pieces of the propagation suites: the node agent as a REAL child process (the built dist/
 * when it is at least as new as its sources, else the sources through test/relay/run-ts.cjs, as
 * test/relay/helpers.ts does for the relay), an in-process API over any database, readers of
 * the agents' persisted memory maps and of their KV status, and the comparison of those maps
 * with `compile(state, node)` of the API's snapshot.
 */

export const ROOT = path.resolve(__dirname, '..', '..');
export const SHARED_NATS_URL = process.env.NATS_URL || 'nats://127.0.0.1:4222';
export const TOKEN = 'propagation-bootstrap-token-0123456789';

// --------------------------------------------------------------------- service child processes

export type ServiceKind = 'agent' | 'relay';

// What each service's entry point loads from the workspace (relay: the event store too).
const SOURCE_DIRS: Record<ServiceKind, string[]> = {
  agent: [
    'services/agent/src',
    'libs/dataplane/src',
    'libs/messaging/src',
    'libs/domain/src',
    'libs/config/src',
  ],
  relay: [
    'services/relay/src',
    'libs/event-store/src',
    'libs/messaging/src',
    'libs/domain/src',
    'libs/config/src',
  ],
};

function newestTsMtime(dir: string): number {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestTsMtime(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.spec.ts'))
      newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * The built service (`npm run build`) when dist/ is at least as new as every source it loads;
 * otherwise the sources through test/relay/run-ts.cjs, so a stale build never tests old code.
 */
export function serviceCommand(
  kind: ServiceKind,
  forceSource = false,
): { args: string[]; from: 'dist' | 'source' } {
  const main = path.join(ROOT, 'dist', 'services', kind, 'src', 'main.js');
  const newest = Math.max(...SOURCE_DIRS[kind].map((d) => newestTsMtime(path.join(ROOT, d))));
  if (!forceSource && fs.existsSync(main) && fs.statSync(main).mtimeMs >= newest)
    return { args: [main], from: 'dist' };
  return { args: [path.join(ROOT, 'test/relay/run-ts.cjs'), `services/${kind}/src/main.ts`], from: 'source' };
}

export type LogLine = Record<string, unknown> & { msg?: string; level?: string; incarnation: number };

/**
 * A service as a child process (own process group, tracked by the harness so a crashed run
 * leaves nothing behind). It can be killed and started again (a new incarnation) with the same
 * environment; JSON log lines of every incarnation are kept, tagged with it.
 */
export class ServiceProcess {
  readonly logs: LogLine[] = [];
  incarnation = 0;
  child: ChildProcess | undefined;
  from: 'dist' | 'source' | undefined;
  stderr = '';
  /** Set when a child exits without the test asking for it. */
  crashed: string | undefined;
  private expectExit = false;

  constructor(
    readonly kind: ServiceKind,
    readonly name: string,
    readonly env: Record<string, string>,
  ) {}

  get alive(): boolean {
    const c = this.child;
    return c !== undefined && c.exitCode === null && c.signalCode === null;
  }

  get pid(): number | undefined {
    return this.alive ? this.child!.pid : undefined;
  }

  /**
   * Spawns the service and resolves once it has written its first log line (its modules are
   * loaded). Other engineers rebuild dist/ while tests run, and a process started between tsc's
   * emit and tsc-alias's rewrite cannot load its modules: such a start-up death is retried, the
   * last attempt from the sources.
   */
  async start(attempts = 4): Promise<void> {
    if (this.alive) throw new Error(`${this.kind} ${this.name} is already running`);
    for (let attempt = 1; ; attempt++) {
      const incarnation = ++this.incarnation;
      const child = this.spawn(incarnation, attempt === attempts);
      try {
        await waitFor(
          () => {
            if (child.exitCode !== null || child.signalCode !== null)
              throw Object.assign(new Error(`exited (code ${child.exitCode})`), { exited: true });
            return this.logs.some((l) => l.incarnation === incarnation && l.time !== undefined);
          },
          { timeoutMs: 30_000, intervalMs: 25, what: `${this.kind} ${this.name} to start` },
        );
        return;
      } catch (err) {
        const exited = child.exitCode !== null || child.signalCode !== null;
        if (!exited || attempt >= attempts) {
          await this.kill9();
          throw new Error(`${(err as Error).message}\n${this.describe()}`, { cause: err });
        }
        // Not a crash of the service under test: it never got to run. Try again.
        this.logs.push({ msg: `start-up attempt ${attempt} died: ${this.stderr.slice(-500)}`, incarnation });
        await sleep(500);
      }
    }
  }

  private spawn(incarnation: number, forceSource: boolean): ChildProcess {
    const { args, from } = serviceCommand(this.kind, forceSource);
    this.from = from;
    this.expectExit = false;
    this.crashed = undefined;
    this.stderr = '';
    // Only what the test says: no MESH_* of the environment running the tests leaks in.
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MESH_')));
    const child = spawnTracked(process.execPath, args, {
      cwd: ROOT,
      env: { ...base, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    let buf = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          this.logs.push({ ...JSON.parse(line), incarnation });
        } catch {
          this.logs.push({ msg: line, incarnation });
        }
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (c: string) => {
      this.stderr += c;
    });
    child.once('exit', (code, signal) => {
      if (!this.expectExit && this.child === child)
        this.crashed = `${this.kind} ${this.name} exited unexpectedly (code ${code}, signal ${signal})`;
    });
    return child;
  }

  /** SIGKILL (the process group): no shutdown, no final status write. */
  async kill9(): Promise<void> {
    this.expectExit = true;
    if (this.child) await kill9Child(this.child);
  }

  /** SIGTERM, SIGKILL after 12 s. */
  async stop(): Promise<void> {
    this.expectExit = true;
    if (this.child) await terminate(this.child, { signal: 'SIGTERM', timeoutMs: 12_000 });
  }

  /** For failure messages: what the process said last. */
  describe(lines = 15): string {
    const tail = this.logs
      .slice(-lines)
      .map((l) => JSON.stringify(l))
      .join('\n');
    return `--- ${this.kind} ${this.name} (${this.from}, incarnation ${this.incarnation}, alive ${this.alive})\n${tail}\n${this.stderr.slice(-2000)}`;
  }
}

export interface AgentProcessOptions {
  node: string;
  cluster: string;
  natsUrl: string;
  apiUrl: string;
  stateFile: string;
  heartbeatMs?: number;
}

/** One node: an agent child process over a memory backend persisted to `stateFile`. */
export class AgentNode extends ServiceProcess {
  constructor(readonly opts: AgentProcessOptions) {
    super('agent', opts.node, {
      MESH_NODE: opts.node,
      MESH_CLUSTER: opts.cluster,
      NATS_URL: opts.natsUrl,
      MESH_API_URL: opts.apiUrl,
      MESH_TOKEN: TOKEN,
      MESH_DATAPLANE: 'memory',
      MESH_STATE_FILE: opts.stateFile,
      MESH_HEARTBEAT_MS: String(opts.heartbeatMs ?? 500),
      MESH_RECENT_APPLIES: '1000',
    });
  }

  get node(): string {
    return this.opts.node;
  }

  /** `applied` log lines (one per successful apply), in order. */
  applies(incarnation?: number): Array<{ revision: number; ops: number; incarnation: number }> {
    return this.logs
      .filter((l) => l.msg === 'applied' && (incarnation === undefined || l.incarnation === incarnation))
      .map((l) => ({ revision: Number(l.revision), ops: Number(l.ops), incarnation: l.incarnation }));
  }
}

/** The relay as a child process; `MESH_LOG_LEVEL=debug` logs every published revision. */
export function relayProcess(name: string, env: Record<string, string>): ServiceProcess {
  return new ServiceProcess('relay', name, {
    MESH_RELAY_INSTANCE: name,
    MESH_LOG_LEVEL: 'debug',
    MESH_RELAY_POLL_MS: '500',
    MESH_RELAY_LOCK_RETRY_MS: '200',
    MESH_RELAY_SESSION_CHECK_MS: '500',
    ...env,
  });
}

// -------------------------------------------------------------------------------- in-process API

export interface Api {
  url: string;
  app: INestApplication;
  logs: Record<string, unknown>[];
  // biome-ignore lint/suspicious/noExplicitAny: responses are asserted field by field
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<any>;
  callRaw(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
    // biome-ignore lint/suspicious/noExplicitAny: see above
  ): Promise<{ status: number; body: any; text: string }>;
  close(): Promise<void>;
}

/** The API (NestJS, in this process) over `databaseUrl` (migrated here), on a loopback port. */
export async function startApi(databaseUrl: string, cluster: string, natsUrl: string): Promise<Api> {
  await migrateToLatest(databaseUrl);
  const logs: Record<string, unknown>[] = [];
  const app = await createApiApp({
    databaseUrl,
    port: 0,
    host: '127.0.0.1',
    cluster,
    natsUrl,
    bootstrapToken: TOKEN,
    logSink: (l) => logs.push(l),
  });
  try {
    await app.listen(0, '127.0.0.1');
  } catch (err) {
    await app.close().catch(() => undefined);
    throw err;
  }
  const url = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
  const callRaw: Api['callRaw'] = async (method, p, body, headers = {}) => {
    const res = await fetch(url + p, {
      method,
      headers: {
        authorization: `Bearer ${TOKEN}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: res.status, body: parsed, text };
  };
  return {
    url,
    app,
    logs,
    callRaw,
    async call(method, p, body, headers) {
      const r = await callRaw(method, p, body, headers);
      if (r.status >= 300) throw new Error(`${method} ${p}: HTTP ${r.status} ${r.text.slice(0, 500)}`);
      return r.body;
    },
    close: () => app.close(),
  };
}

/** POST /v1/changes; returns the new revision (fails on anything but 201). */
export async function commitChange(
  api: Api,
  apply: unknown[],
  del: unknown[] = [],
  reason = 'propagation e2e',
) {
  const r = await api.callRaw('POST', '/v1/changes', { reason, apply, delete: del });
  if (r.status !== 201) throw new Error(`POST /v1/changes: HTTP ${r.status} ${r.text.slice(0, 500)}`);
  return r.body.revision as number;
}

/* Resources: loopback only (VIPs 127.100.x.y, workloads 127.0.1.x), as DESIGN.md requires. */

export function service(
  name: string,
  vip: string,
  port = 9080,
  selector: Record<string, string> = { app: name },
) {
  return { kind: 'Service', name, spec: { vip, ports: [{ port, protocol: 'TCP' }], selector } };
}

export function workload(
  name: string,
  address: string,
  node: string,
  app: string,
  opts: { version?: string; weight?: number } = {},
) {
  const spec: Record<string, unknown> = {
    address,
    node,
    labels: { app, version: opts.version ?? 'v1' },
    identity: app,
  };
  if (opts.weight !== undefined) spec.weight = opts.weight;
  return { kind: 'Workload', name, spec };
}

export function route(name: string, svc: string, weights: Record<string, number>) {
  return {
    kind: 'Route',
    name,
    spec: {
      service: svc,
      backends: Object.entries(weights).map(([version, weight]) => ({
        selector: { app: svc, version },
        weight,
      })),
    },
  };
}

export function policy(name: string, svc: string, action: 'ALLOW' | 'DENY', identities: string[]) {
  return {
    kind: 'AuthorizationPolicy',
    name,
    spec: { service: svc, action, from: identities.map((identity) => ({ identity })) },
  };
}

export const ref = (kind: string, name: string) => ({ kind, name });

// ---------------------------------------------------------------------------- state and the maps

/** `GET /v1/snapshot` as a MeshState (what every agent must compile). */
export async function snapshotState(api: Api): Promise<MeshState> {
  const body = (await api.call('GET', '/v1/snapshot')) as { revision: number; resources: StoredResource[] };
  const state: MeshState = { revision: body.revision, resources: new Map() };
  for (const r of body.resources) state.resources.set(refKey(r), r);
  return state;
}

/** What an agent's MEMORY backend persisted: opened with the backend's own loader, read-only. */
export async function readStateFile(file: string): Promise<{ maps: MapSet; meta: Meta | undefined }> {
  const backend = await MemoryMapBackend.open({ file });
  try {
    return { maps: await readMaps(backend), meta: await backend.readMeta() };
  } finally {
    await backend.close();
  }
}

/**
 * The node's persisted maps hold exactly `compile(state, node)` (with the ids the maps already
 * use: ids are the agent's allocation, everything else is byte-compared), no half-applied
 * service, and the checkpoint stored with them is `state.revision` of this node and cluster.
 */
export async function expectNodeMapsMatch(file: string, state: MeshState, node: string, cluster: string) {
  const { maps, meta } = await readStateFile(file);
  const expected = compile(state, node, { ids: IdAllocator.fromMaps(maps) });
  expect({ node, diff: diffMapSets(maps, expected.maps) }).toEqual({ node, diff: [] });
  expect({ node, halfApplied: halfAppliedServices(maps) }).toEqual({ node, halfApplied: [] });
  // Same shape as a compile with fresh ids: ids are the only freedom the agent has.
  expect(countEntries(maps)).toBe(countEntries(compile(state, node).maps));
  expect(meta).toMatchObject({ appliedRevision: state.revision, node, cluster });
  return { maps, entries: countEntries(maps) };
}

// ------------------------------------------------------------------------------- status and NATS

export interface StatusReader {
  tools: NatsTools;
  kv: KV;
  /**
   * The latest status of each of `nodes`, by direct get (no consumer: `readNodeStatuses` lists
   * keys through a push consumer, which can repeat keys while agents write; see bugs.e2e-spec.ts).
   */
  read(nodes: string[]): Promise<Map<string, NodeStatus>>;
  close(): Promise<void>;
}

/** The cluster's status bucket, created if needed exactly as agents create it. */
export async function statusReader(natsUrl: string, cluster: string): Promise<StatusReader> {
  const tools = await natsTools(natsUrl);
  try {
    const kv = await provisionStatusBucket(jetstream(tools.nc), cluster);
    return {
      tools,
      kv,
      async read(nodes) {
        const out = new Map<string, NodeStatus>();
        for (const node of nodes) {
          const e = await kv.get(node);
          if (e?.operation === 'PUT') out.set(node, decodeNodeStatus(e.value));
        }
        return out;
      },
      close: () => tools.close(),
    };
  } catch (err) {
    await tools.close().catch(() => undefined);
    throw err;
  }
}

/** Every status value a node writes, in KV order (raw JSON: `dataplane.startedAt` tells processes apart). */
export interface StatusHistory {
  values: Map<string, Array<NodeStatus & { startedAt: string | undefined }>>;
  stop(): void;
}

export async function watchStatuses(kv: KV): Promise<StatusHistory> {
  const values: StatusHistory['values'] = new Map();
  const it = await kv.watch({ key: '>' });
  void (async () => {
    for await (const e of it) {
      if (e.operation !== 'PUT') continue;
      try {
        const s = decodeNodeStatus(e.value);
        const raw = JSON.parse(Buffer.from(e.value).toString('utf8')) as {
          dataplane?: { startedAt?: string };
        };
        const list = values.get(s.node) ?? [];
        list.push({ ...s, startedAt: raw.dataplane?.startedAt });
        values.set(s.node, list);
      } catch {
        // not a node status
      }
    }
  })().catch(() => undefined);
  return { values, stop: () => it.stop() };
}

/** Waits until every node reports `revision` or later; fails at once when an agent crashes. */
export async function waitForApplied(
  reader: StatusReader,
  agents: AgentNode[],
  revision: number,
  timeoutMs = 30_000,
): Promise<Map<string, NodeStatus>> {
  let last = new Map<string, NodeStatus>();
  try {
    return await waitFor(
      async () => {
        const crashed = agents.find((a) => a.crashed);
        if (crashed) throw Object.assign(new Error(crashed.crashed), { fatal: true });
        last = await reader.read(agents.map((a) => a.node));
        return agents.every((a) => (last.get(a.node)?.appliedRevision ?? -1) >= revision) ? last : undefined;
      },
      {
        timeoutMs,
        intervalMs: 100,
        what: `nodes ${agents.map((a) => a.node)} to apply revision ${revision}`,
      },
    );
  } catch (err) {
    const at = agents.map((a) => `${a.node}=${last.get(a.node)?.appliedRevision ?? 'none'}`).join(' ');
    throw new Error(
      `${(err as Error).message}; reported: ${at}\n${agents.map((a) => a.describe()).join('\n')}`,
      {
        cause: err,
      },
    );
  }
}

// ----------------------------------------------------------------------------------- temp dirs

export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `propagation-${prefix}-`));
  // Also removed if the test process exits without reaching afterAll.
  removeDirAtExit(dir);
  return dir;
}

export function removeTempDir(dir: string | undefined): void {
  if (!dir) return;
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  keepDirAtExit(dir);
}

/**
 * Runs every cleanup step, each bounded by `stepTimeoutMs`, even when earlier ones fail or hang;
 * failures are reported on stderr, never thrown (afterAll must get through all of them).
 */
export async function cleanupAll(
  steps: Array<[string, (() => Promise<unknown> | unknown) | undefined]>,
  stepTimeoutMs = 20_000,
): Promise<void> {
  for (const [what, step] of steps) {
    if (!step) continue;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.resolve().then(step),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${stepTimeoutMs} ms`)), stepTimeoutMs);
        }),
      ]);
    } catch (err) {
      process.stderr.write(`cleanup of ${what} failed: ${(err as Error).message}\n`);
    } finally {
      clearTimeout(timer);
    }
  }
}
