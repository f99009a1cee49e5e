/**
 * The two measured paths of the api benchmark (HTTP through the API, EventStore.append directly),
 * each run for a given time and summed up alike, so slices of one path can be pooled and compared.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { EventStore } from '@meshplane/event-store';
import {
  cpuSample,
  cpuSince,
  round,
  roundSummary,
  runConcurrent,
  summarize,
  type ThroughputResult,
} from '../lib';
import { OPERATOR, REASON } from './args';
import { ChangeSequence, toChange, traceparent } from './changes';
import type { HttpClients } from './clients';
import { validate } from './store';

export interface PathResult {
  ops: number;
  elapsedMs: number;
  latencies: number[];
  /** Event-loop utilization of the main thread (the API server, or the appenders and the store). */
  mainElu: number;
  /** CPU of this process (all threads) per op, ms. */
  processCpuMsPerOp: number;
  machineBusy: number;
  /** HTTP only: event-loop utilization of the client thread. */
  clientElu?: number;
}

export type HttpRun = (ms: number, via?: HttpClients) => Promise<PathResult>;
export type AppendRun = (ms: number) => Promise<PathResult>;

/** Runs the HTTP clients (`primary` unless told otherwise) for `ms` against the API in this thread. */
export function httpRunner(primary: HttpClients): HttpRun {
  return async (ms, via = primary) => {
    const elu0 = performance.eventLoopUtilization();
    const cpu0 = cpuSample();
    const r = await via.run(ms);
    const cpu = cpuSince(cpu0);
    return {
      ops: r.ops,
      elapsedMs: r.elapsedMs,
      latencies: r.latencies,
      mainElu: performance.eventLoopUtilization(elu0).utilization,
      processCpuMsPerOp: cpu.processMs / r.ops,
      machineBusy: cpu.machineBusyFraction,
      clientElu: r.clientElu,
    };
  };
}

/** Appends the same single-Workload changes as the HTTP clients send, from `writers` concurrent loops. */
export function appendRunner(store: EventStore, population: number, writers: number): AppendRun {
  const seq = new ChangeSequence(population);
  let lastAppended = 0;
  const appendOp = async () => {
    const res = await store.append([toChange(seq.next())], {
      actor: OPERATOR,
      reason: REASON,
      requestId: randomUUID(),
      traceContext: traceparent(),
      validate,
    });
    if (res.status !== 'appended') throw new Error(`append returned ${res.status}`);
    if (res.changeSet.revision > lastAppended) lastAppended = res.changeSet.revision;
  };
  return async (ms) => {
    const elu0 = performance.eventLoopUtilization();
    const r: ThroughputResult = await runConcurrent({ writers, durationMs: ms, op: appendOp });
    return {
      ops: r.ops,
      elapsedMs: r.elapsedMs,
      latencies: r.latencies,
      mainElu: performance.eventLoopUtilization(elu0).utilization,
      processCpuMsPerOp: r.cpu.processMs / r.ops,
      machineBusy: r.cpu.machineBusyFraction,
    };
  };
}

/** Pools two results of one path: ops and time add up, utilizations are weighted by time, CPU by ops. */
export function accumulate(acc: PathResult | undefined, r: PathResult): PathResult {
  if (!acc) return r;
  const ops = acc.ops + r.ops;
  const elapsedMs = acc.elapsedMs + r.elapsedMs;
  const w = (a: number, b: number) => (a * acc.elapsedMs + b * r.elapsedMs) / elapsedMs;
  return {
    ops,
    elapsedMs,
    latencies: acc.latencies.concat(r.latencies),
    mainElu: w(acc.mainElu, r.mainElu),
    processCpuMsPerOp: (acc.processCpuMsPerOp * acc.ops + r.processCpuMsPerOp * r.ops) / ops,
    machineBusy: w(acc.machineBusy, r.machineBusy),
    ...(r.clientElu !== undefined ? { clientElu: w(acc.clientElu ?? 0, r.clientElu) } : {}),
  };
}

export function pathDetails(r: PathResult) {
  const perS = (r.ops * 1000) / r.elapsedMs;
  return {
    ops: r.ops,
    elapsed_s: round(r.elapsedMs / 1000, 4),
    per_s: round(perS, 4),
    latency_ms: roundSummary(summarize(r.latencies), 3),
    main_thread_event_loop_utilization: round(r.mainElu, 3),
    ...(r.clientElu !== undefined
      ? {
          client_thread_event_loop_utilization: round(r.clientElu, 3),
          client_thread_busy_ms_per_op: round((r.clientElu * r.elapsedMs) / r.ops, 3),
        }
      : {}),
    process_cpu_ms_per_op: round(r.processCpuMsPerOp, 3),
    main_thread_busy_ms_per_op: round((r.mainElu * r.elapsedMs) / r.ops, 3),
    machine_cpu_busy: round(r.machineBusy, 3),
  };
}
