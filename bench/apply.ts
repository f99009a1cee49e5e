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
 *   cold:   the same fleet, each agent's apply timed alone after `evict-mb` of other memory was
 *           read (`cold-changes` changes): the caches and TLB as an agent finds them inside the
 *           propagation run, where NATS, the other agents' messages, scavenges and the other
 *           processes ran since its last apply, and an apply costs 3-4x what it costs here warm.
 *           What a change saves in cache misses shows here, where a propagation run's noise
 *           (+-15% between runs) hides it. An upper bound: the flush also evicts the code and
 *           V8's shared structures, which the 50 agents of a thread keep warm for each other.
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
import { type CpuProfile, summarizeProfile, withCpuProfile } from './lib/cpu-profile';
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
  /**
   * Changes then applied under the V8 profiler (0: none): `details.profile`. By a lone agent, or
   * with `profile-cold`, by 10 agents with the caches flushed before each apply (the flush's own
   * samples left out): where the time of a cold apply goes.
   */
  profileChanges: 0,
  profileCold: false,
  /** The cold case: changes, and how much memory is read before each agent's apply. */
  coldChanges: 40,
  evictMb: 64,
};

/** Memory to read before a cold apply: `mb` MiB, touched once so that its pages exist. */
function evictionBuffer(mb: number): Uint8Array {
  return new Uint8Array(mb * 2 ** 20).fill(1);
}

/** Reads one byte per cache line of `buf` (returned so that the reads are not optimized away). */
function evict(buf: Uint8Array): number {
  let x = 0;
  for (let i = 0; i < buf.length; i += 64) x ^= buf[i]!;
  return x;
}

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

/**
 * One change applied by every agent in turn; returns the round's wall time in ms. With `cold`,
 * `cold` is read before each agent's apply and only the applies are timed.
 */
async function applyEverywhere(agents: Agent[], event: CommittedEvent, cold?: Uint8Array): Promise<number> {
  let ms = 0;
  let t0 = performance.now();
  const changed = [refKey(event)];
  for (const a of agents) {
    if (cold) {
      flushed.sum ^= evict(cold);
      t0 = performance.now();
    }
    evolveInPlace(a.state, event);
    const r = a.compiler.update(a.state, changed);
    const o = await a.reconciler.submit(r.desired, { touched: r.touched });
    if (!o.ok) throw new Error(`apply of revision ${event.revision} failed: ${o.error}`);
    if (cold) ms += performance.now() - t0;
  }
  return cold ? ms : performance.now() - t0;
}
// Where evict()'s result goes, so that its reads cannot be optimized away.
const flushed = { sum: 0 };

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

  let cold: { p50_us: number; p99_us: number; changes: number; evict_mb: number } | undefined;
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
    if (n > 1 && args.coldChanges > 0) {
      const buf = evictionBuffer(args.evictMb);
      const us: number[] = [];
      for (let i = 0; i < args.coldChanges; i++)
        us.push(((await applyEverywhere(agents, next(), buf)) * 1000) / n);
      cold = {
        p50_us: round(percentile(us, 50), 4),
        p99_us: round(percentile(us, 99), 4),
        changes: args.coldChanges,
        evict_mb: args.evictMb,
      };
      progress(
        t0,
        `${n} agent(s), caches flushed before each apply: p50 ${cold.p50_us} µs per agent and change`,
      );
    }
    return result;
  };

  // Each case collects the previous one's agents in its own settleHeap().
  const loneBefore = await measure(1);
  const shared = await measure(args.agents);
  const loneAfter = await measure(1);
  const lone50 = (loneBefore.p50_us + loneAfter.p50_us) / 2;
  const profile =
    args.profileChanges > 0
      ? await profileApplies(
          base,
          next,
          args.profileChanges,
          args.warmupApplies,
          args.profileCold,
          args.evictMb,
        )
      : undefined;
  const metrics: Record<string, number> = {
    lone_p50_us: round(lone50, 4),
    shared_p50_us: shared.p50_us,
    shared_vs_lone_ratio: round(shared.p50_us / lone50, 3),
    ...(cold ? { cold_p50_us: cold.p50_us, cold_vs_lone_ratio: round(cold.p50_us / lone50, 3) } : {}),
    lone_heap_mb: round((loneBefore.heap_mb_per_agent + loneAfter.heap_mb_per_agent) / 2, 3),
    shared_heap_mb_per_agent: shared.heap_mb_per_agent,
    shared_off_heap_mb_per_agent: shared.off_heap_mb_per_agent,
  };
  const details: Record<string, unknown> = {
    method:
      'fold + incremental compile + plan + memory-backend writes + checkpoint per agent, one change at a time; lone measured before and after shared',
    cases: { lone_before: loneBefore, shared, lone_after: loneAfter, ...(cold ? { cold } : {}) },
    ...(profile ? { profile } : {}),
  };
  closeDetails(metrics, details, (m) => [
    `one change costs a lone agent ${m.lone_p50_us} µs (p50) and each of ${args.agents} agents sharing a heap ${m.shared_p50_us} µs: sharing costs x${m.shared_vs_lone_ratio}.`,
    ...(m.cold_p50_us !== undefined
      ? [
          `with the caches flushed before each apply (${args.evictMb} MiB read), as in a propagation run: ${m.cold_p50_us} µs, x${m.cold_vs_lone_ratio} the lone agent's.`,
        ]
      : []),
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
 * A lone agent's changes under the profiler (or 10 cold agents'), after the same warm-up as a
 * measured case: where an apply spends its time, by function and by TypeScript line, in µs per
 * agent and change.
 */
async function profileApplies(
  base: MeshState,
  next: () => CommittedEvent,
  changes: number,
  warmup: number,
  cold: boolean,
  evictMb: number,
) {
  const agents: Agent[] = [];
  for (let i = 0; i < (cold ? 10 : 1); i++) agents.push(await startAgent(`node-profiled-${i}`, base));
  for (let i = 0; i < Math.ceil(warmup / agents.length); i++) await applyEverywhere(agents, next());
  const buf = cold ? evictionBuffer(evictMb) : undefined;
  settleHeap();
  const { profile } = await withCpuProfile(
    async () => {
      for (let i = 0; i < changes; i++) await applyEverywhere(agents, next(), buf);
    },
    {
      samplingIntervalUs: 50,
      ...(process.env.MESH_BENCH_PROFILE_DIR
        ? { file: `${process.env.MESH_BENCH_PROFILE_DIR}/apply.cpuprofile` }
        : {}),
    },
  );
  if (cold) dropFunction(profile, 'evict');
  const applies = changes * agents.length;
  const s = summarizeProfile(profile, { top: 15 });
  const perChange = (r: Record<string, number>, n: number) =>
    Object.fromEntries(
      Object.entries(r)
        .slice(0, n)
        .map(([k, ms]) => [k, round((ms * 1000) / applies, 3)]),
    );
  const out = {
    changes,
    agents: agents.length,
    cold,
    busy_us_per_change: round((s.busyMs * 1000) / applies, 3),
    self_us_by_group: perChange(s.selfByGroup, 8),
    top_self_us: perChange(s.topSelf, 15),
    hot_lines_us: perChange(s.hotLines, 25),
  };
  console.log(
    `profile of ${changes} changes (${cold ? `${agents.length} agents, caches flushed before each apply` : 'a lone agent'}): ` +
      `${out.busy_us_per_change} µs busy per agent and change; hottest lines (µs):`,
  );
  for (const [line, us] of Object.entries(out.hot_lines_us).slice(0, 12))
    console.log(`  ${String(us).padStart(7)}  ${line}`);
  return out;
}

/** Leaves the samples of function `name` out of `profile`, as if the profiler had been off. */
function dropFunction(profile: CpuProfile, name: string): void {
  const ids = new Set(profile.nodes.filter((n) => n.callFrame.functionName === name).map((n) => n.id));
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  // A sample's time is the gap after it (summarizeProfile reads deltas[i + 1] for sample i): a
  // kept sample keeps its own gap, a dropped one's goes with it.
  const keptSamples: number[] = [];
  const keptDeltas: number[] = [];
  let gapAfterLast = deltas[0] ?? 0;
  for (let i = 0; i < samples.length; i++) {
    if (ids.has(samples[i]!)) continue;
    keptSamples.push(samples[i]!);
    keptDeltas.push(gapAfterLast);
    gapAfterLast = deltas[i + 1] ?? 0;
  }
  keptDeltas.push(gapAfterLast);
  profile.samples = keptSamples;
  profile.timeDeltas = keptDeltas;
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
