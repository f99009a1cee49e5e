import fs from 'node:fs';
import { cpuSample, cpuSince, round, roundSummary, summarize } from '../lib';
import type { LineProc, RrResult, RrServer } from './procs';
import { rrSlice } from './procs';

/*
 * Request/response latency cases, run interleaved: every round runs every case once (a
 * slice of N samples after a warmup), in an order rotated by one each round, so load that
 * other work puts on the shared machine lands on all cases alike. A case's samples are
 * pooled over its slices; the per-slice p50s are kept to show how stable they were.
 *
 * After every slice the server that should have answered is asked how many connections it
 * accepted: a VIP slice that did not land on the backend (a connect4 that did not
 * translate) fails the bench instead of measuring something else.
 *
 * Contention screening. The machine is shared: when other work holds both cores, the
 * client, server and proxy wait for a CPU (and loopback's softirq work waits for
 * ksoftirqd) at every hop, and a slice's p50 can triple while the same slice on a quiet
 * machine varies by 1-3%. A slice whose p50 is more than `contendedAbove` times the
 * case's best slice p50 was contended: after all rounds such slices are run again
 * (interleaved, up to `retries` passes, within `rerunBudgetS`); a re-run replaces the slice
 * when its p50 is lower. What stays contended is counted and reported, and so is the
 * processes' run-queue wait per request of every kept slice (/proc/<pid>/schedstat).
 */

export interface LatencyCase {
  name: string;
  client: LineProc;
  target: { host: string; port: number };
  mode: 'new' | 'reused';
  /** The server every connection of this case must reach. */
  server: RrServer;
  /** getpeername() must report this (the VIP for VIP cases). */
  expectPeer?: string;
  /** Every process on the request's path (client, proxy, server): their run-queue waits are summed. */
  pids: number[];
}

interface Slice {
  us: number[];
  p50: number;
  /** Run-queue wait of the case's processes per request, us. */
  waitUs: number;
  res: RrResult;
}

export interface CaseResult {
  name: string;
  mode: 'new' | 'reused';
  samples_us: number[];
  slice_p50_us: number[];
  slice_wait_us: number[];
  /** Slices run again because they were contended. */
  reruns: number;
  /** Slices still over the contention threshold at the end (kept: the least contended attempt). */
  contended: number;
  /** tcp_info of the client socket of the last slice (TCP's view: bytes it carried). */
  last: Pick<RrResult, 'peer' | 'local' | 'bytes_acked' | 'bytes_received'>;
}

export interface LatencyOptions {
  rounds: number;
  newSamples: number;
  reusedSamples: number;
  warmup: number;
  size: number;
  contendedAbove: number;
  retries: number;
  rerunBudgetS: number;
}

/** Nanoseconds the tasks have spent runnable but waiting for a CPU (field 2 of schedstat). */
function runQueueWaitNs(pids: readonly number[]): number {
  let ns = 0;
  for (const pid of pids) ns += Number(fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]);
  return ns;
}

async function runSlice(c: LatencyCase, opts: LatencyOptions): Promise<Slice> {
  const n = c.mode === 'new' ? opts.newSamples : opts.reusedSamples;
  const before = await c.server.accepts();
  const w0 = runQueueWaitNs(c.pids);
  const res = await rrSlice(c.client, c.target, c.mode, n, opts.warmup, opts.size);
  const waitUs = (runQueueWaitNs(c.pids) - w0) / 1000 / (n + opts.warmup);
  const accepted = (await c.server.accepts()) - before;
  const expected = c.mode === 'new' ? n + opts.warmup : 1;
  if (accepted !== expected)
    throw new Error(
      `${c.name}: ${c.server.host}:${c.server.port} accepted ${accepted} connections, expected ${expected} ` +
        '(the traffic did not reach the backend it was meant for)',
    );
  if (c.expectPeer && res.peer !== c.expectPeer)
    throw new Error(`${c.name}: getpeername() says ${res.peer}, expected ${c.expectPeer}`);
  const us = res.samples_ns.map((ns) => ns / 1000);
  return { us, p50: summarize(us).p50, waitUs, res };
}

export async function runLatency(
  cases: LatencyCase[],
  opts: LatencyOptions,
  onProgress?: (what: string) => void,
): Promise<{ results: Record<string, CaseResult>; machineBusy: number; elapsedMs: number }> {
  const slices = new Map<LatencyCase, Slice[]>(cases.map((c) => [c, []]));
  const reruns = new Map<LatencyCase, number>(cases.map((c) => [c, 0]));
  const cpu0 = cpuSample();
  const t0 = Date.now();
  for (let r = 0; r < opts.rounds; r++) {
    for (let i = 0; i < cases.length; i++) {
      const c = cases[(i + r) % cases.length]!;
      slices.get(c)![r] = await runSlice(c, opts);
    }
    if ((r + 1) % 5 === 0 || r + 1 === opts.rounds) onProgress?.(`round ${r + 1}/${opts.rounds}`);
  }
  const contended = (c: LatencyCase) => {
    const s = slices.get(c)!;
    const best = Math.min(...s.map((x) => x.p50));
    return s.flatMap((x, r) => (x.p50 > opts.contendedAbove * best ? [r] : []));
  };
  const budgetEnd = Date.now() + opts.rerunBudgetS * 1000;
  for (let pass = 1; pass <= opts.retries && Date.now() < budgetEnd; pass++) {
    const todo: Array<[number, LatencyCase]> = [];
    for (const c of cases) for (const r of contended(c)) todo.push([r, c]);
    if (todo.length === 0) break;
    todo.sort((a, b) => a[0] - b[0]);
    for (const [r, c] of todo) {
      if (Date.now() >= budgetEnd) break;
      const s = await runSlice(c, opts);
      reruns.set(c, reruns.get(c)! + 1);
      if (s.p50 < slices.get(c)![r]!.p50) slices.get(c)![r] = s;
    }
    onProgress?.(`re-ran ${todo.length} contended slices (pass ${pass}/${opts.retries})`);
  }
  const results: Record<string, CaseResult> = {};
  for (const c of cases) {
    const s = slices.get(c)!;
    const last = s[s.length - 1]!.res;
    results[c.name] = {
      name: c.name,
      mode: c.mode,
      samples_us: s.flatMap((x) => x.us),
      slice_p50_us: s.map((x) => round(x.p50, 4)),
      slice_wait_us: s.map((x) => round(x.waitUs, 3)),
      reruns: reruns.get(c)!,
      contended: contended(c).length,
      last: {
        peer: last.peer,
        local: last.local,
        bytes_acked: last.bytes_acked,
        bytes_received: last.bytes_received,
      },
    };
  }
  return { results, machineBusy: cpuSince(cpu0).machineBusyFraction, elapsedMs: Date.now() - t0 };
}

export function p50(r: CaseResult): number {
  return summarize(r.samples_us).p50;
}

/** Median over rounds of (a's slice p50 / b's slice p50): the comparison within each round. */
export function pairedRatio(a: CaseResult, b: CaseResult): number {
  const ratios = a.slice_p50_us.map((x, i) => x / b.slice_p50_us[i]!);
  return summarize(ratios).p50;
}

export function describeCase(r: CaseResult) {
  return {
    mode: r.mode,
    us: roundSummary(summarize(r.samples_us), 4),
    slice_p50_us: r.slice_p50_us,
    slice_run_queue_wait_us_per_request: r.slice_wait_us,
    slices_rerun_as_contended: r.reruns,
    slices_still_contended: r.contended,
    client_socket: r.last,
  };
}
