import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  compile,
  diffMapSets,
  halfAppliedServices,
  IdAllocator,
  MemoryMapBackend,
  readMaps,
} from '@meshplane/dataplane';
import type { Change, MeshState } from '@meshplane/domain';
import type { ChangeSet, EventStore } from '@meshplane/event-store';
import {
  connectNats,
  decodeNodeStatus,
  type NodeStatus,
  provisionRevisionStream,
  provisionStatusBucket,
  publishRevision,
  statusBucket,
  streamName,
} from '@meshplane/messaging';
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  type AgentConfig,
  type AgentDeps,
  type AgentHandle,
  silentLogger,
  startAgent,
} from '../../services/agent/src';

export const NATS_URL = process.env.NATS_URL || 'nats://127.0.0.1:4222';

/** A per-suite cluster: its own stream and status bucket on the shared NATS, deleted by `close`. */
export interface ClusterFixture {
  cluster: string;
  url: string;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  kv: KV;
  dir: string;
  /** Appends `changes` as one revision and publishes it as the relay would; returns the revision. */
  commit(store: EventStore, changes: Change[]): Promise<number>;
  publish(cs: ChangeSet): Promise<void>;
  nodeStatus(node: string): Promise<NodeStatus | undefined>;
  close(): Promise<void>;
}

export async function clusterFixture(
  prefix: string,
  maxMsgs?: number,
  url = NATS_URL,
): Promise<ClusterFixture> {
  const cluster = `${prefix}-${randomBytes(4).toString('hex')}`;
  const nc = await connectNats(url, { name: `${prefix}-e2e`, firstConnectTimeoutMs: 10_000 });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  await provisionRevisionStream(jsm, cluster, maxMsgs ? { maxMsgs } : {});
  const kv = await provisionStatusBucket(js, cluster);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
  const publish = async (cs: ChangeSet) => {
    await publishRevision(js, cluster, cs);
  };
  return {
    cluster,
    url,
    nc,
    js,
    jsm,
    kv,
    dir,
    publish,
    async commit(store, changes) {
      const r = await store.append(changes, { actor: 'agent-e2e', reason: 'agent e2e' });
      if (r.status !== 'appended') throw new Error(`expected a new revision, got ${r.status}`);
      await publish(r.changeSet);
      return r.changeSet.revision;
    },
    async nodeStatus(node) {
      const e = await kv.get(node);
      return e && e.operation === 'PUT' ? decodeNodeStatus(e.value) : undefined;
    },
    async close() {
      for (const name of [streamName(cluster), `KV_${statusBucket(cluster)}`]) {
        await jsm.streams.delete(name).catch(() => undefined);
      }
      await nc.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function agentConfig(f: ClusterFixture, node: string, over: Partial<AgentConfig> = {}): AgentConfig {
  return {
    node,
    cluster: f.cluster,
    natsUrl: f.url,
    dataplane: 'memory',
    stateFile: path.join(f.dir, `${node}.maps.json`),
    heartbeatMs: 500,
    fullPassMs: 60_000,
    recentApplies: 64,
    agentVersion: '0.1.0-e2e',
    ...over,
  };
}

export interface RunningAgent {
  handle: AgentHandle;
  backend: MemoryMapBackend;
}

/** Starts an agent in this process on a MemoryMapBackend persisted to the node's file. */
export async function runAgent(
  f: ClusterFixture,
  node: string,
  deps: Partial<AgentDeps> = {},
  over: Partial<AgentConfig> = {},
): Promise<RunningAgent> {
  const config = agentConfig(f, node, over);
  const backend = await MemoryMapBackend.open({ file: config.stateFile! });
  const handle = await startAgent(config, { backend, nc: f.nc, log: silentLogger, retryMs: 200, ...deps });
  return { handle, backend };
}

/** The maps hold exactly what compile(state) gives for this node, with the ids they already use. */
export async function expectMapsMatch(
  backend: MemoryMapBackend,
  state: MeshState,
  node: string,
): Promise<void> {
  const actual = await readMaps(backend);
  const expected = compile(state, node, { ids: IdAllocator.fromMaps(actual) });
  expect(diffMapSets(actual, expected.maps)).toEqual([]);
  expect(halfAppliedServices(actual)).toEqual([]);
  expect((await backend.readMeta())?.appliedRevision).toBe(state.revision);
}
