/** The propagation benchmark's table and findings, from the measured sizes. */
import os from 'node:os';
import { meetsTarget, ratioCi95, round } from '../lib';
import { TARGETS } from './args';
import type { SizeResult } from './run-size';

export function combinationTable(sizes: SizeResult[]): string {
  const rows = sizes.flatMap((s) =>
    s.combinations.map((c) => {
      const st = c.stats.stages_ms;
      return [
        String(c.agents),
        String(c.services),
        String(c.changes),
        String(c.stats.commit_to_all_applied_ms.p50),
        String(c.stats.commit_to_all_applied_ms.p99),
        String(st.append_call_to_committed?.p50 ?? ''),
        String(st.committed_to_published?.p50 ?? ''),
        String(st.published_to_received_by_every_thread?.p50 ?? ''),
        String(st.published_to_all_applied?.p50 ?? ''),
        String(c.stats.thread_ms_per_agent?.p50 ?? ''),
        String(
          round(
            Object.values(c.cpu_ms_per_change).reduce((a, b) => a + b, 0),
            3,
          ),
        ),
        String(c.floor?.publish_to_all_received_ms.p99 ?? ''),
        c.floor
          ? String(round(c.stats.commit_to_all_applied_ms.p99 / c.floor.publish_to_all_received_ms.p99, 3))
          : '',
        String(Math.max(...c.gc.workers.map((g) => g.majorMaxMs), c.gc.main.majorMaxMs)),
      ];
    }),
  );
  const header = [
    'agents',
    'services',
    'changes',
    'p50 ms',
    'p99 ms',
    'append p50',
    'commit->pub p50',
    'pub->threads p50',
    'pub->all applied p50',
    'thread ms/agent p50',
    'cpu ms/change',
    'floor p99',
    'p99/floor',
    'max major GC ms',
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export function findings(m: Record<string, number>, sizes: SizeResult[]): string[] {
  const out: string[] = [];
  const large = sizes.find((s) => s.floor) ?? sizes.at(-1);
  const head = large?.combinations.at(-1);
  const one = large?.combinations.find((c) => c.agents === 1);
  if (head) {
    const st = head.stats.stages_ms;
    const floor = large?.floor;
    out.push(
      `${head.agents} agents x ${head.services} services, per change (p50): append ${st.append_call_to_committed?.p50} ms ` +
        `(not in the latency); committed -> published ${st.committed_to_published?.p50} ms (relay: NOTIFY, read, ` +
        `publish, ack); published -> every worker thread received ${st.published_to_received_by_every_thread?.p50} ms; ` +
        `published -> all agents applied ${st.published_to_all_applied?.p50} ms` +
        (floor
          ? `; the floor (publish -> ${floor.consumers} stream readers received) p50 ` +
            `${floor.publish_to_all_received_ms.p50} ms, p99 ${floor.publish_to_all_received_ms.p99} ms.`
          : '.'),
    );
    out.push(
      `the ${head.agents} agents share ${head.worker_elu.length} worker threads on ${os.cpus().length} cores and take turns ` +
        `on them: a thread's last agent applied ${st.thread_received_to_its_last_agent_applied?.p50} ms (p50) after the ` +
        `thread received the revision, ${head.stats.thread_ms_per_agent?.p50} ms per agent (decode, evolve, incremental ` +
        `compile, diff, map writes, checkpoint, status put); worker event-loop utilization ${head.worker_elu.join(', ')}. ` +
        (head.stats.thread_wait_ms
          ? `Over its span a thread ran ${head.stats.thread_run_ms?.p50} ms and waited for a core ` +
            `${head.stats.thread_wait_ms.p50} ms (p50; p99 ${head.stats.thread_run_ms?.p99} and ${head.stats.thread_wait_ms.p99}). `
          : '') +
        'On real nodes each agent has its own CPU.',
    );
    const cpu = head.cpu_ms_per_change;
    const total = Object.values(cpu).reduce((a, b) => a + b, 0);
    out.push(
      'CPU time per change, over the whole measured stretch (the gaps, status writes and GC ' +
        `included; waiting for a core excluded): ${Object.entries(cpu)
          .map(([k, ms]) => `${k} ${ms} ms`)
          .join(
            ', ',
          )}; ${round(total, 3)} ms in all for ${os.cpus().length} cores. The bench process holds ` +
        `the ${head.agents} agents, the relay and the commits.` +
        (floor
          ? ` The floor used ${Object.entries(floor.cpu_ms_per_message)
              .map(([k, ms]) => `${k} ${ms} ms`)
              .join(', ')} per message.`
          : ''),
    );
  }
  if (head) {
    const w = head.gc.workers;
    const settled = head.worker_heap_settled_mb;
    out.push(
      `garbage collection during those changes: worker threads ${w.map((g) => `${g.count} GCs, ${g.majorCount} full (max ${g.maxMs} ms, ` + `${g.totalMs} ms in all)`).join('; ')}, heaps ${head.worker_heap_mb.join(' / ')} MiB` +
        (settled
          ? ` (${settled.map((x) => `${x.before} -> ${x.after}`).join(' / ')} MiB in the full GC after the fleet started)`
          : '') +
        ` (the simulation puts ${Math.ceil(head.agents / w.length)} agents' state in one heap; a real agent's heap is ~1/${Math.ceil(head.agents / w.length)} of that); ` +
        `main thread (commits, bookkeeping) ${head.gc.main.count} GCs (max ${head.gc.main.maxMs} ms), relay thread ${head.gc.relay.count} (max ${head.gc.relay.maxMs} ms)` +
        (head.relay_heap_settled_mb && head.main_heap_settled_mb
          ? `; their heaps in the same full GC: relay ${head.relay_heap_settled_mb.before} -> ${head.relay_heap_settled_mb.after} MiB, main ${head.main_heap_settled_mb.before} -> ${head.main_heap_settled_mb.after} MiB.`
          : '.'),
    );
  }
  const slow = head?.stats.slowest_changes;
  if (slow?.length)
    out.push(
      `the ${slow.length} slowest changes (commit -> all applied; relay, received by every thread, each thread's ` +
        `span, and of it run/waiting for a core; GC pauses that overlapped, ms per thread; CPU the hypervisor gave to other guests meanwhile, ms over both vCPUs) ` +
        `(steal over all ${head!.changes} changes: ${head!.stats.steal.total_ms} ms, in ${head!.stats.steal.changes_with_steal} of them): ${slow
          .map(
            (x) =>
              `${x.commit_to_all_applied} ms = ${x.committed_to_published} + ${x.published_to_received_by_every_thread} + ` +
              `[${x.thread_received_to_last_applied.join(', ')}]` +
              (x.thread_run_wait_ms.some(([run]) => run !== null)
                ? ` (run/wait ${x.thread_run_wait_ms.map(([run, wait]) => `${run}/${wait}`).join(', ')})`
                : '') +
              (Object.keys(x.gc_ms).length
                ? ` (GC ${Object.entries(x.gc_ms)
                    .map(([t, ms]) => `${t === 'main' || t === 'relay' ? t : `worker ${t}`} ${ms}`)
                    .join(', ')})`
                : '') +
              (x.steal_ms ? ` (steal ${x.steal_ms})` : ''),
          )
          .join('; ')}.`,
    );
  const ratios = (large?.combinations ?? [])
    .filter((c) => c.floor)
    .map(
      (c) =>
        `${c.agents} agent(s): p99 ${c.stats.commit_to_all_applied_ms.p99} ms vs floor ${c.floor!.publish_to_all_received_ms.p99} ms = ` +
        `${round(c.stats.commit_to_all_applied_ms.p99 / c.floor!.publish_to_all_received_ms.p99, 3)}`,
    );
  if (ratios.length)
    out.push(
      `p99 / floor with as many consumers as agents, ${large?.services} services: ${ratios.join('; ')}.`,
    );
  const prof = large?.agent_profile;
  if (prof) {
    const groups = Object.entries(prof.self_by_group)
      .filter(([k]) => k !== '(idle)')
      .slice(0, 8)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    const fns = Object.entries(prof.inclusive_by_function)
      .slice(0, 10)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    const lines = Object.entries(prof.hot_lines)
      .slice(0, 6)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    out.push(
      `profile of one worker thread: ${prof.busy_ms_per_agent_change} ms busy per agent per change; self time by ` +
        `group (ms): ${groups}; inclusive by function (ms): ${fns}; hottest lines (ms): ${lines}.`,
    );
  }
  if (one) {
    const c = one.stats.commit_to_all_applied_ms;
    out.push(
      `a single agent at ${one.services} services: commit -> applied p50 ${c.p50} ms, p99 ${c.p99} ms (what one node ` +
        'sees when its agent has a CPU to itself).',
    );
  }
  for (const s of sizes) if (s.capped) out.push(`CAPPED: ${s.capped}.`);
  for (const [name, t] of Object.entries(TARGETS))
    if (m[name] !== undefined && !meetsTarget(m[name]!, t))
      out.push(
        `${name} MISS (${m[name]} vs ${t.op} ${t.threshold}${name === 'p99_ratio' && m.p99_ratio_ci95_low !== undefined ? `; 95% interval of this run's samples ${m.p99_ratio_ci95_low}-${m.p99_ratio_ci95_high}` : ''}): ` +
          (name === 'tracing_overhead_ratio'
            ? 'see details.tracing (on/off, and the POST alone).'
            : 'see the stage breakdown above and details.sizes.'),
      );
  return out;
}

/**
 * The bootstrap interval of p99_ratio: both p99s are about the 3rd-5th worst sample, and the ratio
 * of two such tails moves by ±0.4 between runs of one build; this says how far this run's own
 * samples let it move.
 */
function ratioInterval(changes: number[], floor: number[]): Record<string, number> {
  const ci = ratioCi95(changes, floor, 99);
  return { p99_ratio_ci95_low: round(ci.low, 3), p99_ratio_ci95_high: round(ci.high, 3) };
}

/** The headline metrics (most agents x the largest mesh, its floor, bootstrap) and keys per combination. */
export function metricsOf(sizes: SizeResult[]): Record<string, number> {
  const large = sizes.find((s) => s.floor) ?? sizes.at(-1)!;
  const head = large.combinations.at(-1)!;
  const floor = large.floor;
  const metrics: Record<string, number> = {
    p50_ms: head.stats.commit_to_all_applied_ms.p50,
    p99_ms: head.stats.commit_to_all_applied_ms.p99,
    floor_p50_ms: floor ? floor.publish_to_all_received_ms.p50 : Number.NaN,
    floor_p99_ms: floor ? floor.publish_to_all_received_ms.p99 : Number.NaN,
    p99_ratio: floor
      ? round(head.stats.commit_to_all_applied_ms.p99 / floor.publish_to_all_received_ms.p99, 3)
      : Number.NaN,
    ...(floor ? ratioInterval(head.stats.by_change_ms, floor.by_message_ms) : {}),
    bootstrap_10k_ms: sizes.find((s) => s.services === 10_000)?.bootstrap?.snapshot_http_ms ?? Number.NaN,
    headline_agents: head.agents,
    headline_services: head.services,
  };
  for (const s of sizes)
    for (const c of s.combinations) {
      const k = `${c.agents}x${Math.round(c.services / 1000)}k`;
      metrics[`p50_ms_${k}`] = c.stats.commit_to_all_applied_ms.p50;
      metrics[`p99_ms_${k}`] = c.stats.commit_to_all_applied_ms.p99;
      if (c.floor) {
        metrics[`floor_p99_ms_${k}`] = c.floor.publish_to_all_received_ms.p99;
        metrics[`p99_ratio_${k}`] = round(
          c.stats.commit_to_all_applied_ms.p99 / c.floor.publish_to_all_received_ms.p99,
          3,
        );
      }
    }
  for (const s of sizes)
    if (s.bootstrap) {
      const k = `${Math.round(s.services / 1000)}k`;
      metrics[`bootstrap_${k}_snapshot_ms`] = s.bootstrap.snapshot_http_ms;
      metrics[`bootstrap_${k}_stream_replay_ms`] = s.bootstrap.stream_replay_ms;
    }
  return metrics;
}

/** What a further run of the benchmark (e.g. the tracing overhead run) hands back to the main one. */
export interface ExtraRunResult {
  /** Merged into the results' metrics; must not reuse a key that is already there. */
  metrics: Record<string, number>;
  details?: unknown;
}

export function mergeExtraRun(
  metrics: Record<string, number>,
  details: Record<string, unknown>,
  name: string,
  r: ExtraRunResult,
): void {
  for (const [k, v] of Object.entries(r.metrics)) {
    if (k in metrics)
      throw new Error(`the ${name} run returned metric ${k}, which the propagation run already has`);
    metrics[k] = v;
  }
  if (r.details !== undefined) details[name] = r.details;
}
