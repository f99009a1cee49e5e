import path from 'node:path';
import type { RelayConfig } from '../../services/relay/src';
import { nowMs } from '../lib';
import { WorkerRpc } from '../lib/worker-rpc';
import type { GcStats } from './gc';
import type { RelayWorkerReply, RelayWorkerRequest } from './relay-worker';
import { sleep } from './support';

type Report = Extract<RelayWorkerReply, { type: 'report' }>;

/** The main thread's handle on the relay's worker thread (relay-worker.ts). */
export class RelayThread {
  private readonly rpc: WorkerRpc<RelayWorkerRequest, RelayWorkerReply>;

  constructor(config: Omit<RelayConfig, 'logSink'>) {
    this.rpc = new WorkerRpc(
      path.join(__dirname, 'worker-entry.js'),
      { workerData: { entry: 'relay', config } },
      'relay thread',
    );
  }

  /** Resolves once the relay has published `revision`. */
  async published(revision: number, timeoutMs: number): Promise<void> {
    const end = nowMs() + timeoutMs;
    for (;;) {
      const s = await this.rpc.call({ type: 'status' });
      if (s.type === 'status' && s.lastPublishedRevision >= revision) return;
      if (nowMs() > end) throw new Error(`timed out waiting for the relay to publish revision ${revision}`);
      await sleep(20);
    }
  }

  /** The relay thread's collections since the last call. */
  async gc(): Promise<GcStats> {
    const r = await this.rpc.call({ type: 'gc' });
    if (r.type !== 'gc') throw new Error(`relay thread: unexpected reply ${r.type}`);
    return r.stats;
  }

  /** A full collection of the relay thread's heap (see args.settleHeap); its heap before and after, MiB. */
  async settle(): Promise<{ before: number; after: number }> {
    const r = await this.rpc.call({ type: 'settle' });
    if (r.type !== 'settled') throw new Error(`relay thread: unexpected reply ${r.type}`);
    return { before: r.before, after: r.after };
  }

  /** The relay's metrics and what it logged. */
  async report(): Promise<Omit<Report, 'id' | 'type'>> {
    const r = (await this.rpc.call({ type: 'report' })) as Report;
    return { metrics: r.metrics, log: r.log };
  }

  /** Stops the relay (lock released, connections closed), then the thread. */
  async stop(): Promise<void> {
    await this.rpc.call({ type: 'stop' }).catch(() => undefined);
    await this.rpc.terminate();
  }
}
