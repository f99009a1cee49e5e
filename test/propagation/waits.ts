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
import type { MeshState } from '@meshplane/domain';
import { decodeNodeStatus, type NodeStatus, provisionStatusBucket } from '@meshplane/messaging';
import { jetstream } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { waitFor } from '../harness';
import { type NatsTools, natsTools } from '../relay/helpers';
import type { AgentNode } from './service-process';

/*
 * What the propagation suites wait for and compare: the agents' persisted memory maps against
 * `compile(state, node)` of the API's snapshot, and the agents' status in the cluster's KV bucket.
 */

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
  /** Also require the agent's own state READY: it has applied its base, not only restored a checkpoint. */
  opts: { ready?: boolean } = {},
): Promise<Map<string, NodeStatus>> {
  let last = new Map<string, NodeStatus>();
  const done = (s: NodeStatus | undefined) =>
    (s?.appliedRevision ?? -1) >= revision && (!opts.ready || s?.state === 'READY');
  try {
    return await waitFor(
      async () => {
        const crashed = agents.find((a) => a.crashed);
        if (crashed) throw Object.assign(new Error(crashed.crashed), { fatal: true });
        last = await reader.read(agents.map((a) => a.node));
        return agents.every((a) => done(last.get(a.node))) ? last : undefined;
      },
      {
        timeoutMs,
        intervalMs: 100,
        what: `nodes ${agents.map((a) => a.node)} to apply revision ${revision}`,
      },
    );
  } catch (err) {
    const at = agents
      .map(
        (a) => `${a.node}=${last.get(a.node)?.appliedRevision ?? 'none'} (${last.get(a.node)?.state ?? '?'})`,
      )
      .join(' ');
    throw new Error(
      `${(err as Error).message}; reported: ${at}\n${agents.map((a) => a.describe()).join('\n')}`,
      {
        cause: err,
      },
    );
  }
}
