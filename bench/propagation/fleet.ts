/**
 * The simulated nodes of the propagation benchmark, seen from the main thread: agents spread
 * round-robin over a few worker threads (the machine's cores; each worker has its own heap), and
 * the per-revision bookkeeping of when each node applied what.
 */
import path from 'node:path';
import type { ProfileSummary } from '../lib/cpu-profile';
import { WorkerRpc } from '../lib/worker-rpc';
import type { AgentWorkerData, AgentWorkerReply, AgentWorkerRequest, StatsReply } from './agent-worker';
import { roundedHeap } from './gc';

/** One worker thread of agents: requests and replies (WorkerRpc), events to the fleet. */
class AgentWorker extends WorkerRpc<AgentWorkerRequest, AgentWorkerReply> {
  constructor(data: AgentWorkerData, heapMb: number, onEvent: (m: AgentWorkerReply) => void) {
    super(
      path.join(__dirname, 'worker-entry.js'),
      { workerData: data, resourceLimits: { maxOldGenerationSizeMb: heapMb } },
      `agent worker ${data.worker}`,
      onEvent,
    );
  }
}

interface AppliedEvent {
  revision: number;
  at: number;
  applyMs: number | null;
}

export interface RevisionApplied {
  /** Per node: when it first held `revision` (or a later one). */
  at: Map<string, number>;
  /** Per node: its reconciler's apply duration for that apply. */
  applyMs: number[];
}

export class Fleet {
  private readonly workers: AgentWorker[] = [];
  readonly nodes: string[] = [];
  private readonly events = new Map<string, AppliedEvent[]>();
  private waiting:
    | { revision: number; expected: number; got: RevisionApplied; resolve: (r: RevisionApplied) => void }
    | undefined;
  /** When each worker thread's own subscriber got each revision: revision -> worker -> time. */
  readonly seen = new Map<number, Map<number, number>>();
  /** Each worker thread's run and wait time over its span of each revision (see 'thread-sched'). */
  readonly sched = new Map<number, Map<number, { runMs: number; waitMs: number }>>();
  /** Floor consumers' receipts by stream sequence: consumer -> time. */
  readonly floorRecv = new Map<number, Map<number, number>>();
  floorBytes = 0;
  private floorWaiting: { seq: number; expected: number; resolve: () => void } | undefined;

  constructor(workers: number, base: Omit<AgentWorkerData, 'worker'>, heapMb: number) {
    for (let w = 0; w < workers; w++)
      this.workers.push(new AgentWorker({ ...base, worker: w }, heapMb, (m) => this.onEvent(m)));
  }

  get size(): number {
    return this.nodes.length;
  }

  get workerCount(): number {
    return this.workers.length;
  }

  /** The worker thread that hosts `node` (round-robin by index). */
  workerOf(node: string): number {
    return Number(node.slice('node-'.length)) % this.workers.length;
  }

  private onEvent(m: AgentWorkerReply): void {
    if (m.type === 'events') {
      for (const e of m.events) this.onEvent(e);
    } else if (m.type === 'applied') {
      let list = this.events.get(m.node);
      if (!list) {
        list = [];
        this.events.set(m.node, list);
      }
      list.push({ revision: m.revision, at: m.at, applyMs: m.applyMs });
      const w = this.waiting;
      if (w && m.revision >= w.revision && !w.got.at.has(m.node)) this.count(w, m.node, list.at(-1)!);
    } else if (m.type === 'seen') {
      let per = this.seen.get(m.revision);
      if (!per) {
        per = new Map();
        this.seen.set(m.revision, per);
      }
      per.set(m.worker, m.at);
    } else if (m.type === 'thread-sched') {
      let per = this.sched.get(m.revision);
      if (!per) {
        per = new Map();
        this.sched.set(m.revision, per);
      }
      per.set(m.worker, { runMs: m.runMs, waitMs: m.waitMs });
    } else if (m.type === 'floor-recv') {
      this.floorBytes = m.bytes;
      let per = this.floorRecv.get(m.seq);
      if (!per) {
        per = new Map();
        this.floorRecv.set(m.seq, per);
      }
      if (!per.has(m.consumer)) per.set(m.consumer, m.at);
      const f = this.floorWaiting;
      if (f && m.seq === f.seq && per.size >= f.expected) {
        this.floorWaiting = undefined;
        f.resolve();
      }
    }
  }

  private count(w: NonNullable<Fleet['waiting']>, node: string, e: AppliedEvent): void {
    w.got.at.set(node, e.at);
    if (e.applyMs !== null) w.got.applyMs.push(e.applyMs);
    if (w.got.at.size >= w.expected) {
      this.waiting = undefined;
      w.resolve(w.got);
    }
  }

  /** Resolves once every node of the fleet holds `revision`; rejects after `timeoutMs`. */
  waitAll(revision: number, timeoutMs: number): Promise<RevisionApplied> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const got = this.waiting?.got.at.size ?? 0;
        this.waiting = undefined;
        reject(
          new Error(
            `revision ${revision}: ${got}/${this.nodes.length} nodes applied it within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      const w = {
        revision,
        expected: this.nodes.length,
        got: { at: new Map<string, number>(), applyMs: [] as number[] },
        resolve: (r: RevisionApplied) => {
          clearTimeout(timer);
          resolve(r);
        },
      };
      this.waiting = w;
      // Events that arrived before the caller knew the revision (possible: workers run in parallel).
      // Older ones are never asked for again (revisions only grow): they leave the main heap.
      for (const [node, list] of this.events) {
        const keep = list.findIndex((x) => x.revision >= revision);
        list.splice(0, keep < 0 ? list.length : keep);
        const e = list[0];
        if (e && this.waiting === w && !w.got.at.has(node)) this.count(w, node, e);
      }
    });
  }

  /** Worker threads that host agents (and so a revision subscriber). */
  get activeWorkers(): number {
    return Math.min(this.nodes.length, this.workers.length);
  }

  /** Worker -> when its thread's subscriber got `revision`; waits up to `timeoutMs` for every active worker. */
  async seenBy(revision: number, timeoutMs: number): Promise<Map<number, number>> {
    const end = Date.now() + timeoutMs;
    while ((this.seen.get(revision)?.size ?? 0) < this.activeWorkers && Date.now() < end)
      await new Promise((r) => setTimeout(r, 1));
    return this.seen.get(revision) ?? new Map();
  }

  /** Worker -> its run and wait time over `revision` (taken: each revision is asked for once). */
  takeSched(revision: number): Map<number, { runMs: number; waitMs: number }> {
    const per = this.sched.get(revision) ?? new Map();
    for (const r of this.sched.keys()) if (r <= revision) this.sched.delete(r);
    return per;
  }

  /** Adds nodes `node-<size>`.. up to `total`, round-robin over the workers; each worker starts its share one at a time. */
  async grow(total: number, head: number): Promise<number[]> {
    const byWorker: string[][] = this.workers.map(() => []);
    for (let i = this.nodes.length; i < total; i++) {
      const node = `node-${i}`;
      byWorker[i % this.workers.length]!.push(node);
    }
    const replies = await Promise.all(
      byWorker.map((nodes, w) =>
        nodes.length ? this.workers[w]!.call({ type: 'start', nodes, head }) : Promise.resolve(undefined),
      ),
    );
    for (let i = this.nodes.length; i < total; i++) this.nodes.push(`node-${i}`);
    return replies.flatMap((r) => (r && r.type === 'started' ? r.startMs : []));
  }

  async stats(): Promise<StatsReply[]> {
    const replies = await Promise.all(this.workers.map((w) => w.call({ type: 'stats' })));
    return replies.filter((r): r is StatsReply => r.type === 'stats');
  }

  /** A full GC in every worker; each worker's heap before and after, MiB. */
  async settle(): Promise<Array<{ before: number; after: number }>> {
    const replies = await Promise.all(this.workers.map((w) => w.call({ type: 'settle' })));
    return replies.flatMap((r) =>
      r.type === 'settled' ? [roundedHeap({ before: r.heapBeforeMb, after: r.heapAfterMb })] : [],
    );
  }

  /** Profiles worker `w` while `fn` runs; returns its summary and how many agents it hosts. */
  async profile<T>(
    w: number,
    marks: string[],
    fn: () => Promise<T>,
  ): Promise<{ value: T; summary: ProfileSummary; agents: number }> {
    await this.workers[w]!.call({ type: 'profile-start' });
    const value = await fn();
    const r = await this.workers[w]!.call({ type: 'profile-stop', marks });
    if (r.type !== 'profile') throw new Error(`worker ${w}: unexpected reply ${r.type}`);
    return { value, summary: r.summary, agents: r.agents };
  }

  /** `count` stream readers on `stream`, round-robin over the workers. */
  async floorStart(count: number, stream: string): Promise<void> {
    this.floorRecv.clear(); // sequences start at 1 on every floor stream
    const byWorker: number[][] = this.workers.map(() => []);
    for (let i = 0; i < count; i++) byWorker[i % this.workers.length]!.push(i);
    await Promise.all(
      byWorker.map((consumers, w) => this.workers[w]!.call({ type: 'floor-start', consumers, stream })),
    );
  }

  /** Resolves once `expected` floor consumers received stream sequence `seq`. */
  floorWait(seq: number, expected: number, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.floorWaiting = undefined;
        reject(
          new Error(
            `floor message ${seq}: ${this.floorRecv.get(seq)?.size ?? 0}/${expected} consumers got it`,
          ),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      if ((this.floorRecv.get(seq)?.size ?? 0) >= expected) done();
      else this.floorWaiting = { seq, expected, resolve: done };
    });
  }

  async floorStop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.call({ type: 'floor-stop' })));
  }

  /** Stops every agent (they close their connections), then the workers. */
  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.call({ type: 'stop' }).catch(() => undefined)));
    await Promise.all(this.workers.map((w) => w.terminate().catch(() => undefined)));
  }
}
