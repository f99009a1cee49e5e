import path from 'node:path';
import { waitFor } from '../harness';
import { deleteClusterNats, lastSeq, natsTools } from '../relay/helpers';
import { AgentNode, relayProcess, type ServiceProcess } from './service-process';
import { type StatusReader, waitForApplied } from './waits';

/*
 * The relay and one agent per node as child processes, the way every pipeline suite starts them.
 * Building and starting are separate so the suite holds every process (for its afterAll) before
 * any of them can fail to start.
 */

export interface PipelineOptions {
  cluster: string;
  databaseUrl: string;
  natsUrl: string;
  apiUrl: string;
  nodes: string[];
  /** Each agent persists its memory maps to `<dir>/<node>.maps.json`. */
  dir: string;
  /** Added to the relay's environment (metrics port, tracing). */
  relayEnv?: Record<string, string>;
}

export interface Pipeline {
  cluster: string;
  relay: ServiceProcess;
  agents: AgentNode[];
}

/** The processes, not started: the relay `relay-<cluster>` and agents in the order of `nodes`. */
export function pipelineProcesses(o: PipelineOptions): Pipeline {
  const relay = relayProcess(`relay-${o.cluster}`, {
    MESH_CLUSTER: o.cluster,
    DATABASE_URL: o.databaseUrl,
    NATS_URL: o.natsUrl,
    ...o.relayEnv,
  });
  const agents = o.nodes.map(
    (node) =>
      new AgentNode({
        node,
        cluster: o.cluster,
        natsUrl: o.natsUrl,
        apiUrl: o.apiUrl,
        stateFile: path.join(o.dir, `${node}.maps.json`),
      }),
  );
  return { cluster: o.cluster, relay, agents };
}

/** Starts the relay, then the agents once the stream exists; resolves when every node is at 0. */
export async function startPipeline(p: Pipeline, reader: StatusReader): Promise<void> {
  await p.relay.start();
  // The relay provisions the stream; agents started before it exists would wait a retry period.
  await waitFor(async () => (await lastSeq(reader.tools.jsm, p.cluster)) >= 0, {
    timeoutMs: 20_000,
    what: 'the relay to provision the stream',
  }).catch((err: Error) => {
    throw new Error(`${err.message}\n${p.relay.describe()}`);
  });
  await Promise.all(p.agents.map((a) => a.start()));
  // READY, not only revision 0: a starting agent reports its checkpoint (0) before it has read
  // its base state, and a commit made meanwhile would reach it inside the snapshot instead of
  // as a revision from the stream (other timings, and no trace context).
  await waitForApplied(reader, p.agents, 0, 30_000, { ready: true });
}

/** Cleanup: delete the cluster's stream and status bucket, over the reader's connection if there is one. */
export async function deleteClusterStreams(
  reader: StatusReader | undefined,
  natsUrl: string,
  cluster: string,
): Promise<void> {
  const tools = reader?.tools ?? (await natsTools(natsUrl));
  await deleteClusterNats(tools.jsm, cluster);
  await tools.close();
}
