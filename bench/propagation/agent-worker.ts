/**
 * A worker thread of the propagation benchmark: it hosts a share of the simulated nodes (real
 * agents, `startAgent`, each with its own NATS connection and a MemoryMapBackend) and, for the
 * floor, a share of plain stream readers. Every event it reports carries a process-wide
 * monotonic timestamp (`nowMs`, hrtime), comparable with the main thread's.
 *
 * Applied detection is the agent's in-process hook: `AgentHandle.waitForRevision(r)` resolves when
 * the agent's reconciler reports a successful apply whose checkpoint is at or after r (maps written,
 * checkpoint stored). A watcher per agent waits for the next revision, records when it resolved and
 * the revision the agent reached (coalesced revisions share one apply), and waits for the one after.
 */

import fs from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { MemoryMapBackend } from '@meshplane/dataplane';
import { cloneState, type MeshState } from '@meshplane/domain';
import { EventStore } from '@meshplane/event-store';
import { connectNats, followStream, readRevisionHeaders, revisionSubject } from '@meshplane/messaging';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { type AgentHandle, type Logger, startAgent } from '../../services/agent/src';
import { nowMs, type ThreadSched, threadSchedReader } from '../lib';
import { type CpuProfile, type ProfileSummary, summarizeProfile } from '../lib/cpu-profile';
import { type GcStats, GcWatch, settleHeap } from './gc';

export interface AgentWorkerData {
  worker: number;
  cluster: string;
  natsUrl: string;
  databaseUrl: string;
  heartbeatMs: number;
  /** MESH_STATUS_INTERVAL_MS of the agents (0: a status write after every apply). */
  statusIntervalMs: number;
}

export type AgentWorkerRequest =
  /** Starts these nodes one after another, each waited until it applied `head`. */
  | { type: 'start'; id: number; nodes: string[]; head: number }
  | { type: 'floor-start'; id: number; consumers: number[]; stream: string }
  | { type: 'floor-stop'; id: number }
  /** Stops every agent and consumer of this worker (the worker is terminated afterwards). */
  | { type: 'stop'; id: number }
  | { type: 'stats'; id: number }
  /** A full garbage collection of this thread's heap (after a fleet start, before measuring). */
  | { type: 'settle'; id: number }
  /** V8 CPU profile of this thread between start and stop, summarized here. */
  | { type: 'profile-start'; id: number }
  | { type: 'profile-stop'; id: number; marks: string[] };

export interface StartedReply {
  type: 'started';
  id: number;
  /** Per node: ms from startAgent() to head applied (agents of this worker start one at a time). */
  startMs: number[];
  heapUsedMb: number;
}

export interface StatsReply {
  type: 'stats';
  id: number;
  /** Garbage collection in this thread since the previous stats request. */
  gc: GcStats;
  agents: number;
  heapUsedMb: number;
  rssMb: number;
  /** Event-loop utilization of this thread since the previous stats request. */
  elu: number;
  warnings: number;
  errors: number;
  firstMessages: string[];
}

export type AgentWorkerReply =
  | StartedReply
  | { type: 'profile'; id: number; summary: ProfileSummary; agents: number }
  | StatsReply
  | { type: 'settled'; id: number; heapBeforeMb: number; heapAfterMb: number }
  | { type: 'ok'; id: number }
  | { type: 'error'; id: number; message: string }
  /** An agent (by node) reached `revision` at `at`; `applyMs` is its reconciler's apply duration. */
  | { type: 'applied'; node: string; revision: number; at: number; applyMs: number | null }
  /** This thread's core subscriber on the revision subject got `revision` at `at`. */
  | { type: 'seen'; worker: number; revision: number; at: number }
  /**
   * From this thread's subscriber having `revision` to its last agent having applied it: the
   * thread's time on a core and its time waiting for one (schedstat), ms.
   */
  | { type: 'thread-sched'; worker: number; revision: number; runMs: number; waitMs: number }
  /** A floor consumer received stream sequence `seq` at `at`. */
  | { type: 'floor-recv'; consumer: number; seq: number; at: number; bytes: number }
  | { type: 'events'; events: AgentWorkerReply[] };

const data = workerData as AgentWorkerData;
const gc = new GcWatch();
const port = parentPort!;
const post = (m: AgentWorkerReply) => port.postMessage(m);
// Events carry their own timestamps, so they are batched (one postMessage per turn of the event
// loop) to keep the benchmark's own overhead off the agents' thread.
let batch: AgentWorkerReply[] = [];
const event = (m: AgentWorkerReply) => {
  if (batch.length === 0)
    setImmediate(() => {
      const b = batch;
      batch = [];
      port.postMessage({ type: 'events', events: b });
    });
  batch.push(m);
};

const agents: AgentHandle[] = [];
const backends: MemoryMapBackend[] = [];
let stopping = false;
let warnings = 0;
let errors = 0;
const firstMessages: string[] = [];
const note = (level: string, msg: string, fields?: Record<string, unknown>) => {
  if (firstMessages.length < 20)
    firstMessages.push(`${level} ${msg} ${fields ? JSON.stringify(fields) : ''}`);
};
/** Agent logs are not written; warnings and errors are counted and the first few kept. */
const log: Logger = {
  info: () => undefined,
  warn: (m, f) => {
    warnings++;
    note('warn', m, f);
  },
  error: (m, f) => {
    errors++;
    note('error', m, f);
  },
};

// The state every agent of this worker bootstraps from: what GET /v1/snapshot serves (the current
// state read from the log's projection), read once per head from the same database.
let store: EventStore | undefined;
let snapshot: MeshState | undefined;
async function snapshotAt(head: number): Promise<MeshState> {
  store ??= await EventStore.open({
    databaseUrl: data.databaseUrl,
    poolSize: 2,
    applicationName: 'bench-prop-snapshot',
  });
  if (!snapshot || snapshot.revision < head) snapshot = await store.currentState();
  return snapshot;
}

const threadSched = threadSchedReader();
// Per revision: this thread's schedstat when its subscriber had it, and how many agents applied it.
const spans = new Map<number, { from?: ThreadSched; applied: number }>();
const reported = new Map<string, number>();
const spanOf = (revision: number) => {
  let sp = spans.get(revision);
  if (!sp) {
    sp = { applied: 0 };
    spans.set(revision, sp);
  }
  return sp;
};

/** `node` reached `revision`: counts it for every revision it covered; the last agent closes the span. */
function countApplied(node: string, revision: number): void {
  const from = (reported.get(node) ?? revision - 1) + 1;
  reported.set(node, revision);
  for (let r = Math.max(from, revision - 100); r <= revision; r++) {
    const sp = spanOf(r);
    if (++sp.applied < agents.length) continue;
    spans.delete(r);
    const now = threadSched();
    if (sp.from && now)
      event({
        type: 'thread-sched',
        worker: data.worker,
        revision: r,
        runMs: now.runMs - sp.from.runMs,
        waitMs: now.waitMs - sp.from.waitMs,
      });
  }
}

async function watch(h: AgentHandle): Promise<void> {
  let next = 1;
  while (!stopping) {
    try {
      // No timeout: a timer per agent per revision would be the harness's cost on the agents' thread.
      await h.waitForRevision(next, Number.POSITIVE_INFINITY);
    } catch {
      continue;
    }
    const at = nowMs();
    // Not status(): that builds the whole history, on the agents' thread, for every apply.
    const s = h.applied();
    event({ type: 'applied', node: h.node, revision: s.revision, at, applyMs: s.durationMs });
    countApplied(h.node, s.revision);
    next = Math.max(next, s.revision) + 1;
  }
}

// When this thread had each revision (its own connection, like every agent here): the "received"
// stage between the publish and the agents' applies.
let observer: NatsConnection | undefined;
async function observe(): Promise<void> {
  if (observer) return;
  observer = await connectNats(data.natsUrl, { name: `bench-observer-${data.worker}` });
  observer.subscribe(revisionSubject(data.cluster), {
    callback: (_err, m) => {
      const at = nowMs();
      const revision = readRevisionHeaders(m.headers).revision;
      if (revision === undefined) return;
      event({ type: 'seen', worker: data.worker, revision, at });
      spanOf(revision).from = threadSched();
      // Spans no agent will close (a fleet that grew meanwhile): bounded, not kept forever.
      for (const r of spans.keys()) if (r < revision - 100) spans.delete(r);
    },
  });
}

async function start(nodes: string[], head: number): Promise<number[]> {
  await observe();
  const base = await snapshotAt(head);
  const times: number[] = [];
  for (const node of nodes) {
    const t0 = nowMs();
    // Injected, so every simulated node is on the memory backend whatever the machine allows.
    const backend = await MemoryMapBackend.open();
    backends.push(backend);
    const h = await startAgent(
      {
        node,
        cluster: data.cluster,
        natsUrl: data.natsUrl,
        dataplane: 'memory',
        heartbeatMs: data.heartbeatMs,
        statusIntervalMs: data.statusIntervalMs,
        fullPassMs: 30 * 60_000,
        recentApplies: 64,
        agentVersion: 'bench',
      },
      {
        backend,
        snapshot: async () => ({ revision: base.revision, state: cloneState(base) }),
        log,
        retryMs: 200,
      },
    );
    agents.push(h);
    await h.waitForRevision(head, 300_000);
    times.push(nowMs() - t0);
    void watch(h);
  }
  return times;
}

// ---- floor: plain stream readers (followStream, as the agents read), one NATS connection each
const floor: { nc: NatsConnection; stop: () => void }[] = [];

async function floorStart(consumers: number[], stream: string): Promise<void> {
  for (const idx of consumers) {
    const nc = await connectNats(data.natsUrl, { name: `bench-floor-${idx}` });
    // The agents' own way of reading the stream (a push consumer per reader, stream-tail.ts).
    const tail = await followStream(
      nc,
      jetstream(nc),
      await jetstreamManager(nc, { checkAPI: false }),
      { stream, startSeq: 1 },
      (m) => event({ type: 'floor-recv', consumer: idx, seq: m.seq, at: nowMs(), bytes: m.data.length }),
    );
    floor.push({ nc, stop: () => tail.stop() });
  }
}

async function floorStop(): Promise<void> {
  for (const f of floor.splice(0)) {
    f.stop();
    await f.nc.close().catch(() => undefined);
  }
}

let elu = performance.eventLoopUtilization();
let session: Session | undefined;

async function handle(msg: AgentWorkerRequest): Promise<AgentWorkerReply> {
  switch (msg.type) {
    case 'start': {
      const startMs = await start(msg.nodes, msg.head);
      return { type: 'started', id: msg.id, startMs, heapUsedMb: process.memoryUsage().heapUsed / 2 ** 20 };
    }
    case 'floor-start':
      await floorStart(msg.consumers, msg.stream);
      return { type: 'ok', id: msg.id };
    case 'floor-stop':
      await floorStop();
      return { type: 'ok', id: msg.id };
    case 'stats': {
      const e = performance.eventLoopUtilization(elu);
      elu = performance.eventLoopUtilization();
      const mem = process.memoryUsage();
      return {
        type: 'stats',
        id: msg.id,
        gc: gc.take(),
        agents: agents.length,
        heapUsedMb: mem.heapUsed / 2 ** 20,
        rssMb: mem.rss / 2 ** 20,
        elu: e.utilization,
        warnings,
        errors,
        firstMessages,
      };
    }
    case 'settle': {
      const { before, after } = settleHeap();
      return { type: 'settled', id: msg.id, heapBeforeMb: before, heapAfterMb: after };
    }
    case 'profile-start': {
      session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 200 });
      await session.post('Profiler.start');
      return { type: 'ok', id: msg.id };
    }
    case 'profile-stop': {
      if (!session) throw new Error('no profile running');
      const { profile } = (await session.post('Profiler.stop')) as { profile: CpuProfile };
      session.disconnect();
      session = undefined;
      // The raw profile, for a closer look in DevTools or a script (MESH_BENCH_PROFILE_DIR).
      const dir = process.env.MESH_BENCH_PROFILE_DIR;
      if (dir)
        fs.writeFileSync(
          path.join(dir, `agents-${process.pid}-${Date.now()}.cpuprofile`),
          JSON.stringify(profile),
        );
      const summary = summarizeProfile(profile, { top: 25, marks: msg.marks, minGroupMs: 1 });
      return { type: 'profile', id: msg.id, summary, agents: agents.length };
    }
    case 'stop': {
      stopping = true;
      await floorStop();
      await observer?.close().catch(() => undefined);
      await Promise.all(agents.splice(0).map((a) => a.stop().catch(() => undefined)));
      // A backend passed in is not closed by stop().
      await Promise.all(backends.splice(0).map((b) => b.close().catch(() => undefined)));
      await store?.close().catch(() => undefined);
      return { type: 'ok', id: msg.id };
    }
  }
}

port.on('message', (msg: AgentWorkerRequest) => {
  handle(msg).then(post, (err: Error) =>
    post({ type: 'error', id: msg.id, message: err.stack ?? err.message }),
  );
});
