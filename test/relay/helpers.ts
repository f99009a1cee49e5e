import { type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { type Change, DEFAULT_NAMESPACE } from '@meshplane/domain';
import { type ChangeSet, EventStore, migrateToLatest } from '@meshplane/event-store';
import {
  connectNats,
  decodeRevision,
  readRevisionHeaders,
  statusBucket,
  streamName,
} from '@meshplane/messaging';
import { type JetStreamManager, jetstreamManager, type StoredMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import { spawnTracked, terminate, waitFor } from '../harness';

export const ROOT = path.resolve(__dirname, '..', '..');

/** A fresh cluster name per suite, so stream and bucket never collide with other runs. */
export function randomCluster(prefix = 'rt'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export async function openLog(databaseUrl: string, cluster: string): Promise<EventStore> {
  await migrateToLatest(databaseUrl);
  const store = await EventStore.open({ databaseUrl, cluster, poolSize: 3, snapshotInterval: 0 });
  guardCheckedOutClients(store.pool);
  return store;
}

/**
 * pg emits 'error' on a checked-out client whose server dies, and pg-pool only listens on idle
 * ones, so a Postgres restart during an append would crash the test process (the append itself
 * still rejects). Give every client a listener when it is first checked out.
 */
export function guardCheckedOutClients(pool: pg.Pool): void {
  // 'acquire' fires before pg-pool removes its idle listener, so mark clients instead of counting.
  const guarded = new WeakSet<pg.PoolClient>();
  pool.on('acquire', (client) => {
    if (guarded.has(client)) return;
    guarded.add(client);
    client.on('error', () => undefined);
  });
}

export function workload(name: string, n: number): Change {
  return {
    op: 'put',
    kind: 'Workload',
    namespace: DEFAULT_NAMESPACE,
    name,
    spec: { address: `127.0.1.${(n % 250) + 1}`, node: 'node-a', labels: { app: name }, identity: name },
  };
}

const TRACEPARENT = (n: number) => `00-${n.toString(16).padStart(32, 'a')}-${'b'.repeat(16)}-01`;

/** Appends `count` revisions (each a new workload); every third carries a traceparent. */
export async function commit(store: EventStore, count: number, tag = 'w'): Promise<ChangeSet[]> {
  const out: ChangeSet[] = [];
  for (let i = 0; i < count; i++) {
    const name = `${tag}-${randomBytes(3).toString('hex')}-${i}`;
    const r = await store.append([workload(name, i)], {
      actor: 'relay-test',
      reason: `commit ${name}`,
      traceContext: i % 3 === 0 ? TRACEPARENT(i + 1) : null,
    });
    if (r.status !== 'appended') throw new Error(`append ${name}: ${r.status}`);
    out.push(r.changeSet);
  }
  return out;
}

export interface NatsTools {
  nc: NatsConnection;
  jsm: JetStreamManager;
  close(): Promise<void>;
}

export async function natsTools(url: string): Promise<NatsTools> {
  const nc = await connectNats(url, { name: 'relay-test', firstConnectTimeoutMs: 10_000 });
  const jsm = await jetstreamManager(nc);
  return { nc, jsm, close: () => nc.close() };
}

export async function lastSeq(jsm: JetStreamManager, cluster: string): Promise<number> {
  try {
    return (await jsm.streams.info(streamName(cluster))).state.last_seq;
  } catch {
    return -1;
  }
}

export async function waitForStream(
  jsm: JetStreamManager,
  cluster: string,
  revision: number,
  timeoutMs = 20_000,
) {
  await waitFor(async () => (await lastSeq(jsm, cluster)) >= revision, {
    timeoutMs,
    intervalMs: 50,
    what: `stream ${streamName(cluster)} to reach revision ${revision}`,
  });
}

/** Every stored message, by sequence (small streams only). */
export async function readStream(jsm: JetStreamManager, cluster: string): Promise<StoredMsg[]> {
  const info = await jsm.streams.info(streamName(cluster));
  const out: StoredMsg[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && seq > 0; seq++) {
    const m = await jsm.streams.getMessage(streamName(cluster), { seq });
    if (m) out.push(m);
  }
  return out;
}

/**
 * The stream holds revisions 1..head of `store`, each exactly once (sequence == revision, the
 * same chain hash, the same decoded change set), and nothing else.
 */
export async function expectStreamMatchesLog(jsm: JetStreamManager, cluster: string, store: EventStore) {
  const head = (await store.head()).revision;
  const msgs = await readStream(jsm, cluster);
  expect(msgs.map((m) => m.seq)).toEqual(Array.from({ length: head }, (_, i) => i + 1));
  const log = new Map<number, ChangeSet>();
  for await (const cs of store.readRevisions(1, { to: head })) log.set(cs.revision, cs);
  for (const m of msgs) {
    const h = readRevisionHeaders(m.header);
    const cs = decodeRevision(m.data);
    expect(h.revision).toBe(m.seq);
    expect(cs.revision).toBe(m.seq);
    expect(m.header.get('Nats-Msg-Id')).toBe(`${cluster}:${m.seq}`);
    expect(cs).toEqual(log.get(m.seq));
  }
  return { head, msgs };
}

export async function deleteClusterNats(jsm: JetStreamManager, cluster: string): Promise<void> {
  for (const name of [streamName(cluster), `KV_${statusBucket(cluster)}`]) {
    await jsm.streams.delete(name).catch(() => undefined);
  }
}

// ------------------------------------------------------------------------- relay child processes

const DIST_MAIN = path.join(ROOT, 'dist', 'services', 'relay', 'src', 'main.js');
const SOURCE_DIRS = ['services/relay/src', 'libs/messaging/src', 'libs/event-store/src', 'libs/domain/src'];

function newestSourceMtime(): number {
  let newest = 0;
  for (const dir of SOURCE_DIRS) {
    for (const f of fs.readdirSync(path.join(ROOT, dir))) {
      if (f.endsWith('.ts')) newest = Math.max(newest, fs.statSync(path.join(ROOT, dir, f)).mtimeMs);
    }
  }
  return newest;
}

/**
 * The relay from its sources through the swc runner. Not dist/: other engineers and benches
 * rebuild it while suites run, and a child started between tsc's emit and tsc-alias's rewrite
 * dies with "Cannot find module '@meshplane/…'" (seen as rare failover failures under load).
 * MESH_E2E_RELAY_FROM_DIST=1 uses a dist/ at least as new as the sources (CI, after the build).
 */
export function relayCommand(): { args: string[]; from: 'dist' | 'source' } {
  if (
    process.env.MESH_E2E_RELAY_FROM_DIST === '1' &&
    fs.existsSync(DIST_MAIN) &&
    fs.statSync(DIST_MAIN).mtimeMs >= newestSourceMtime()
  ) {
    return { args: [DIST_MAIN], from: 'dist' };
  }
  return { args: [path.join(ROOT, 'test/relay/run-ts.cjs'), 'services/relay/src/main.ts'], from: 'source' };
}

export interface RelayProcess {
  child: ChildProcess;
  name: string;
  logs: Record<string, unknown>[];
  waitForLog(pred: (l: Record<string, unknown>) => boolean, what: string, timeoutMs?: number): Promise<void>;
  published(): number[];
  stop(): Promise<void>;
}

export function spawnRelay(name: string, env: Record<string, string>): RelayProcess {
  const { args } = relayCommand();
  const child = spawnTracked(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, MESH_RELAY_INSTANCE: name, MESH_LOG_LEVEL: 'debug', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buf += chunk;
    let nl = buf.indexOf('\n');
    while (nl >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        logs.push(JSON.parse(line));
      } catch {
        logs.push({ msg: line });
      }
      nl = buf.indexOf('\n');
    }
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
  });
  return {
    child,
    name,
    logs,
    async waitForLog(pred, what, timeoutMs = 15_000) {
      await waitFor(
        () => {
          if (child.exitCode !== null) throw new Error(`relay ${name} exited ${child.exitCode}: ${stderr}`);
          return logs.some(pred);
        },
        { timeoutMs, intervalMs: 25, what: `relay ${name}: ${what}` },
      );
    },
    published: () => logs.filter((l) => l.msg === 'published revision').map((l) => Number(l.revision)),
    stop: async () => {
      await terminate(child, { signal: 'SIGTERM', timeoutMs: 15_000 });
    },
  };
}
