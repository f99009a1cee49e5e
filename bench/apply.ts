/*
 * `npm run bench -- apply [--services=10000 --agents=50 --changes=300]`: what one single-resource
 * change costs a node agent's data plane, without NATS: fold the event, incremental compile,
 * plan, map writes and checkpoint (`evolveInPlace`, `IncrementalCompiler.update`,
 * `Reconciler.submit` on a `MemoryMapBackend`), the part of an apply the propagation benchmark
 * repeats for every agent of a worker thread.
 *
 *   lone:   one agent in this heap (what a node's own agent process holds)
 *   shared: `agents` agents in one heap, each with its own state, compiler, reconciler and maps,
 *           taking turns on each change (what a propagation worker thread holds)
 *
 * The lone agent is measured before and after the shared fleet (which is dropped and collected
 * in between), and the two lone runs are averaged, so drift of the machine hits both sides.
 * `shared_vs_lone_ratio` is what sharing a heap costs per apply; there is no target: this is the
 * instrument for making an agent's state smaller (issue 4).
 */
import { performance } from 'node:perf_hooks';
import { IncrementalCompiler, MemoryMapBackend, Reconciler } from '@meshplane/dataplane';
import {
  type CommittedEvent,
  cloneState,
  emptyState,
  evolveInPlace,
  type MeshState,
  refKey,
} from '@meshplane/domain';
import { closeDetails, parseArgs, percentile, round } from './lib';
import { summarizeProfile, withCpuProfile } from './lib/cpu-profile';
import { writeAndPrint } from './lib/report';
import { machineInfo } from './lib/results';
import { nowMs, progress } from './lib/timing';
import { GcWatch, settleHeap } from './propagation/gc';
import { seedChangeSets, WeightChanges } from './propagation/mesh';
import { sleep } from './propagation/support';

const DEFAULTS = {
  services: 10_000,
  /** Agents sharing the heap in the shared case. */
  agents: 50,
  /** Measured changes per case. */
  changes: 300,
  /**
   * Applies (agents x changes) before each measurement, for JIT and first allocations: counted in
   * applies so that the lone agent is as warm as each of the shared ones.
   */
  warmupApplies: 2500,
  /** Node names the workloads are spread over, as in the propagation benchmark. */
  nodes: 100,
  seed: 20_251_126,
  /** Changes a lone agent then applies under the V8 profiler (0: none): `details.profile`. */
  profileChanges: 0,
};

interface Agent {
  state: MeshState;
  compiler: IncrementalCompiler;
  reconciler: Reconciler;
}

async function startAgent(node: string, base: MeshState): Promise<Agent> {
  const reconciler = new Reconciler(await MemoryMapBackend.open(), { node, cluster: 'bench' });
  await reconciler.load();
  const state = cloneState(base);
  const compiler = new IncrementalCompiler(node);
  const first = await reconciler.submit(compiler.reset(state, await reconciler.allocator()).desired);
  if (!first.ok) throw new Error(`${node}: first apply failed: ${first.error}`);
  return { state, compiler, reconciler };
}

/** One change applied by every agent in turn; returns the round's wall time in ms. */
async function applyEverywhere(agents: Agent[], event: CommittedEvent): Promise<number> {
  const t0 = performance.now();
  const changed = [refKey(event)];
  for (const a of agents) {
    evolveInPlace(a.state, event);
    const r = a.compiler.update(a.state, changed);
    const o = await a.reconciler.submit(r.desired, { touched: r.touched });
    if (!o.ok) throw new Error(`apply of revision ${event.revision} failed: ${o.error}`);
  }
  return performance.now() - t0;
}

interface CaseResult {
  agents: number;
  /** Wall time per agent per change, µs: p50 and p99 over the rounds. */
  p50_us: number;
  p99_us: number;
  /** Process CPU (all threads: GC helpers included) per agent per change, µs. */
  cpu_us: number;
  gc_ms: number;
  gc_count: number;
  heap_mb_per_agent: number;
  /** ArrayBuffers (map tables held outside the JS heap), per agent. */
  off_heap_mb_per_agent: number;
}

export async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), DEFAULTS);
  const startedAt = new Date();
  const t0 = nowMs();
  const base = emptyState();
  let revision = 0;
  for (const cs of seedChangeSets(args.services, args.nodes, 250)) {
    revision++;
    for (const c of cs) evolveInPlace(base, { ...c, revision } as CommittedEvent);
  }
  const changes = new WeightChanges(args.services, args.nodes, args.seed);
  const next = (): CommittedEvent => ({ ...changes.next(), revision: ++revision }) as CommittedEvent;

  const measure = async (n: number): Promise<CaseResult> => {
    const agents: Agent[] = [];
    for (let i = 0; i < n; i++) agents.push(await startAgent(`node-${i}`, base));
    for (let i = 0; i < Math.ceil(args.warmupApplies / n); i++) await applyEverywhere(agents, next());
    // The previous case's fleet (1 GiB for 50 agents) dies in this collection, and V8 sweeps and
    // unmaps it on background threads, which took the other core while the lone agent after the
    // fleet was measured: 100-130 µs instead of 50-70, with 3x the CPU. A second's pause lets them finish.
    const heap = settleHeap().after;
    await sleep(1000);
    // After the pause: the tables of the fleet just collected are freed by then.
    const offHeap = process.memoryUsage().arrayBuffers / 2 ** 20;
    const gc = new GcWatch();
    const cpu0 = process.cpuUsage();
    const perAgentUs: number[] = [];
    for (let i = 0; i < args.changes; i++)
      perAgentUs.push(((await applyEverywhere(agents, next())) * 1000) / n);
    const cpu = process.cpuUsage(cpu0);
    const g = gc.take();
    gc.stop();
    const result: CaseResult = {
      agents: n,
      p50_us: round(percentile(perAgentUs, 50), 4),
      p99_us: round(percentile(perAgentUs, 99), 4),
      cpu_us: round((cpu.user + cpu.system) / (args.changes * n), 4),
      gc_ms: round(g.totalMs, 4),
      gc_count: g.count,
      heap_mb_per_agent: round(heap / n, 3),
      off_heap_mb_per_agent: round(offHeap / n, 3),
    };
    progress(
      t0,
      `${n} agent(s): p50 ${result.p50_us} µs per agent and change, heap ${result.heap_mb_per_agent} MiB ` +
        `+ ${result.off_heap_mb_per_agent} MiB off-heap per agent`,
    );
    return result;
  };

  // Each case collects the previous one's agents in its own settleHeap().
  const loneBefore = await measure(1);
  const shared = await measure(args.agents);
  const loneAfter = await measure(1);
  const lone50 = (loneBefore.p50_us + loneAfter.p50_us) / 2;
  const profile =
    args.profileChanges > 0
      ? await profileLone(base, next, args.profileChanges, args.warmupApplies)
      : undefined;
  const metrics: Record<string, number> = {
    lone_p50_us: round(lone50, 4),
    shared_p50_us: shared.p50_us,
    shared_vs_lone_ratio: round(shared.p50_us / lone50, 3),
    lone_heap_mb: round((loneBefore.heap_mb_per_agent + loneAfter.heap_mb_per_agent) / 2, 3),
    shared_heap_mb_per_agent: shared.heap_mb_per_agent,
    shared_off_heap_mb_per_agent: shared.off_heap_mb_per_agent,
  };
  const details: Record<string, unknown> = {
    method:
      'fold + incremental compile + plan + memory-backend writes + checkpoint per agent, one change at a time; lone measured before and after shared',
    cases: { lone_before: loneBefore, shared, lone_after: loneAfter },
    ...(profile ? { profile } : {}),
  };
  closeDetails(metrics, details, (m) => [
    `one change costs a lone agent ${m.lone_p50_us} µs (p50) and each of ${args.agents} agents sharing a heap ${m.shared_p50_us} µs: sharing costs x${m.shared_vs_lone_ratio}.`,
    `heap per agent: ${m.lone_heap_mb} MiB alone (its share of the process's fixed heap included), ${m.shared_heap_mb_per_agent} MiB shared, ` +
      `plus ${m.shared_off_heap_mb_per_agent} MiB of map tables outside the heap.`,
  ]);
  writeAndPrint(
    {
      benchmark: 'apply',
      metrics,
      params: { ...args },
      details,
      machine: machineInfo('n/a (not used by this benchmark)'),
      startedAt,
      durationMs: nowMs() - t0,
    },
    `apply: ${args.services} services, lone agent vs ${args.agents} sharing a heap`,
  );
}

/**
 * A lone agent's changes under the profiler, after the same warm-up as a measured case: where an
 * apply spends its time, by function and by TypeScript line, in µs per change.
 */
async function profileLone(base: MeshState, next: () => CommittedEvent, changes: number, warmup: number) {
  const agent = await startAgent('node-profiled', base);
  for (let i = 0; i < warmup; i++) await applyEverywhere([agent], next());
  settleHeap();
  const { profile } = await withCpuProfile(
    async () => {
      for (let i = 0; i < changes; i++) await applyEverywhere([agent], next());
    },
    {
      samplingIntervalUs: 50,
      ...(process.env.MESH_BENCH_PROFILE_DIR
        ? { file: `${process.env.MESH_BENCH_PROFILE_DIR}/apply.cpuprofile` }
        : {}),
    },
  );
  const s = summarizeProfile(profile, { top: 15 });
  const perChange = (r: Record<string, number>, n: number) =>
    Object.fromEntries(
      Object.entries(r)
        .slice(0, n)
        .map(([k, ms]) => [k, round((ms * 1000) / changes, 3)]),
    );
  const out = {
    changes,
    busy_us_per_change: round((s.busyMs * 1000) / changes, 3),
    self_us_by_group: perChange(s.selfByGroup, 8),
    top_self_us: perChange(s.topSelf, 15),
    hot_lines_us: perChange(s.hotLines, 25),
  };
  console.log(
    `profile of ${changes} lone changes: ${out.busy_us_per_change} µs busy per change; hottest lines (µs):`,
  );
  for (const [line, us] of Object.entries(out.hot_lines_us).slice(0, 12))
    console.log(`  ${String(us).padStart(7)}  ${line}`);
  return out;
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
