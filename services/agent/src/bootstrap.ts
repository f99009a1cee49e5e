import { emptyState, type MeshState } from '@meshplane/domain';
import { decodeNodeStatus, nodeStatusKey, streamInfoOrUndefined } from '@meshplane/messaging';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { Logger } from './logger';
import type { SnapshotSource } from './snapshot';
import type { StatusReporter } from './status';

/*
 * Step 2 of the agent's loop: the desired state to build on. The maps hold compiled entries,
 * not resources, so the state at the checkpoint comes from a replay of the stream (when it
 * still holds revision 1 and there is a checkpoint to resume: works without the API) or from
 * the API snapshot. Waits, reporting why, while neither is possible.
 */

export interface BaseState {
  /** The first revision to consume after `state`. */
  start: number;
  state: MeshState;
}

export interface ChooseBaseOptions {
  jsm: JetStreamManager;
  stream: string;
  /** What the maps hold (0: nothing). */
  checkpoint: number;
  /** After a revision that could not be folded: a replay would fail the same way. */
  preferSnapshot: boolean;
  snapshot: SnapshotSource | undefined;
  reporter: StatusReporter;
  log: Logger;
  retryMs: number;
  stopped(): boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The base state, or undefined when the agent stopped while waiting. */
export async function chooseBase(o: ChooseBaseOptions): Promise<BaseState | undefined> {
  const { jsm, stream, checkpoint, snapshot, reporter, log, retryMs } = o;
  reporter.setState('BOOTSTRAPPING');
  for (;;) {
    if (o.stopped()) return undefined;
    const info = await streamInfoOrUndefined(jsm, stream).catch((err: Error) => {
      log.warn('stream info failed', { error: err.message });
      return null;
    });
    if (info === null) {
      await sleep(retryMs);
      continue;
    }
    if (!info) {
      reporter.setState('BOOTSTRAPPING', `stream ${stream} does not exist yet`);
      void reporter.publish();
      await sleep(retryMs);
      continue;
    }
    const first = info.state.first_seq;
    const last = info.state.last_seq;
    const holdsAll = last === 0 || first <= 1;
    // Replay: resumes a checkpoint without the API, and is the only way when there is no API.
    if (holdsAll && (!snapshot || (checkpoint > 0 && !o.preferSnapshot))) {
      log.info('rebuilding state from the stream', { checkpoint, last });
      return { start: 1, state: emptyState() };
    }
    if (!snapshot) {
      reporter.setState('ERROR', `stream ${stream} starts at revision ${first} and MESH_API_URL is not set`);
      void reporter.publish();
      await sleep(retryMs);
      continue;
    }
    try {
      const snap = await snapshot();
      if (snap.revision + 1 < first)
        throw new Error(`snapshot at ${snap.revision} is older than the stream (${first})`);
      log.info('bootstrapped from the API snapshot', { revision: snap.revision, checkpoint });
      return { start: snap.revision + 1, state: snap.state };
    } catch (err) {
      reporter.setState('BOOTSTRAPPING', `snapshot failed: ${(err as Error).message}`);
      void reporter.publish();
      await sleep(retryMs);
    }
  }
}

/**
 * Per-revision applied times of the previous process (its last status value): kept across a
 * restart so that propagation history per node is not lost. Best effort: nothing to restore
 * is normal, and a value that cannot be read only loses the history.
 */
export async function restoreHistory(
  kv: KV,
  config: { node: string; cluster: string },
  checkpoint: number,
  reporter: StatusReporter,
  log: Logger,
): Promise<void> {
  try {
    const entry = await kv.get(nodeStatusKey(config.node));
    if (entry?.operation !== 'PUT') return;
    const previous = decodeNodeStatus(entry.value);
    if (previous.cluster !== config.cluster) return;
    const kept = reporter.restoreHistory(previous.recentApplies ?? [], checkpoint);
    if (kept > 0) log.info('restored propagation history', { records: kept, checkpoint });
  } catch (err) {
    log.warn('previous status not readable; propagation history starts empty', {
      error: (err as Error).message,
    });
  }
}
