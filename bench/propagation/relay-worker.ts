/**
 * The relay in a worker thread of its own (started through worker-entry.ts): in production it is a
 * process of its own, and on the benchmark's main thread its publishes waited behind that thread's
 * garbage collections (up to 26 ms) and bookkeeping.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type RelayConfig, type RelayHandle, startRelay } from '../../services/relay/src';
import { type GcStats, GcWatch, settleHeap } from './gc';
import { LogCounter } from './support';

export type RelayWorkerRequest = { id: number; type: 'status' | 'report' | 'gc' | 'settle' | 'stop' };
export type RelayWorkerReply =
  | { id: number; type: 'status'; lastPublishedRevision: number }
  | {
      id: number;
      type: 'report';
      metrics: Record<string, unknown>;
      log: { lines: number; warnings: number; errors: number; first: string[] };
    }
  | { id: number; type: 'gc'; stats: GcStats }
  | { id: number; type: 'settled'; before: number; after: number }
  | { id: number; type: 'stopped' }
  | { id: number; type: 'error'; message: string };

const port = parentPort!;
const config = (workerData as { config: Omit<RelayConfig, 'logSink'> }).config;
const log = new LogCounter();
// This thread's collections, laid beside the slow changes like the main thread's and the agents'.
const gc = new GcWatch();
const started: Promise<RelayHandle> = startRelay({ ...config, logSink: log.sink });

port.on('message', (msg: RelayWorkerRequest) => {
  void (async (): Promise<RelayWorkerReply> => {
    const relay = await started;
    if (msg.type === 'status')
      return { id: msg.id, type: 'status', lastPublishedRevision: relay.metrics.lastPublishedRevision };
    if (msg.type === 'gc') return { id: msg.id, type: 'gc', stats: gc.take() };
    if (msg.type === 'settle') return { id: msg.id, type: 'settled', ...settleHeap() };
    if (msg.type === 'report') {
      const { lines, warnings, errors, first } = log;
      return {
        id: msg.id,
        type: 'report',
        metrics: relay.metrics.snapshot(),
        log: { lines, warnings, errors, first },
      };
    }
    await relay.stop();
    return { id: msg.id, type: 'stopped' };
  })()
    .catch((err: Error): RelayWorkerReply => ({ id: msg.id, type: 'error', message: err.message }))
    .then((reply) => port.postMessage(reply));
});
