/** The dataplane benchmark's targets, headline metrics and findings, from the results of its three parts. */
import { round, type Target, targetMisses } from '../lib';
import type { FullSyncRun } from './full-sync';
import { type CaseResult, p50 } from './latency';
import type { MapOpsResult } from './map-ops';

export const TARGETS: Record<string, Target> = {
  vip_vs_direct_p50: { op: '<=', threshold: 1.05 },
  vip_vs_proxy_p50: { op: '<=', threshold: 0.6 },
  batch_vs_c_floor: { op: '>=', threshold: 0.8 },
};

/** The headline metrics: p50s and ratios of the latency cases, the map-ops batch of `mapBatch`, the median full sync. */
export function metricsOf(
  R: Record<string, CaseResult>,
  byBatch: MapOpsResult[],
  mapBatch: number,
  runs: FullSyncRun[],
): Record<string, number> {
  const head = byBatch.find((r) => r.batch === mapBatch)!;
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
  const syncMedian = runs.find((r) => r.total_ms === med(runs.map((x) => x.total_ms)))!;
  const P = (name: string) => round(p50(R[name]!), 4);
  const ratio = (a: number, b: number) => round(a / b, 3);
  return {
    vip_p50_us: P('vip'),
    direct_p50_us: P('direct'),
    proxy_p50_us: P('proxy'),
    vip_vs_direct_p50: ratio(P('vip'), P('direct')),
    vip_vs_proxy_p50: ratio(P('vip'), P('proxy')),
    vip_reused_p50_us: P('vip_reused'),
    direct_reused_p50_us: P('direct_reused'),
    proxy_reused_p50_us: P('proxy_reused'),
    vip_vs_direct_reused_p50: ratio(P('vip_reused'), P('direct_reused')),
    vip_vs_proxy_reused_p50: ratio(P('vip_reused'), P('proxy_reused')),
    direct_in_mesh_p50_us: P('direct_in_mesh'),
    direct_in_mesh_reused_p50_us: P('direct_in_mesh_reused'),
    vip_vs_direct_in_mesh_p50: ratio(P('vip'), P('direct_in_mesh')),
    vip_lb_only_p50_us: P('vip_lb_only'),
    vip_lb_only_reused_p50_us: P('vip_lb_only_reused'),
    vip_lb_only_vs_direct_p50: ratio(P('vip_lb_only'), P('direct')),
    proxy2_p50_us: P('proxy2'),
    proxy2_reused_p50_us: P('proxy2_reused'),
    vip_vs_proxy2_p50: ratio(P('vip'), P('proxy2')),
    sockmap_p50_us: P('sockmap_reused'),
    sockmap_plain_p50_us: P('direct_reused'),
    sockmap_vs_plain_p50: ratio(P('sockmap_reused'), P('direct_reused')),
    latency_slices_contended: Object.values(R).reduce((a, r) => a + r.contended, 0),
    latency_slices_rerun: Object.values(R).reduce((a, r) => a + r.reruns, 0),
    map_batch: mapBatch,
    map_ops_per_s_batch: head.per_s.backend,
    map_ops_per_s_entries: head.per_s.entries,
    map_ops_per_s_addon: head.per_s.addon,
    map_ops_per_s_c_floor: head.per_s.c_floor,
    batch_vs_c_floor: ratio(head.per_s.backend, head.per_s.c_floor),
    full_sync_10k_ms: syncMedian.total_ms,
    full_sync_compile_ms: syncMedian.compile_ms,
    full_sync_apply_ms: syncMedian.apply_ms,
    full_sync_10k_cpu_ms: round(med(runs.map((r) => r.process_cpu_ms)), 4),
  };
}

/** Plain-language findings computed from the numbers (also printed under the table). */
export function findings(m: Record<string, number>, d: Record<string, unknown>): string[] {
  const out: string[] = [];
  const us = (x: number | undefined) => `${x} us`;
  const d3 = (a: number | undefined, b: number | undefined) => round(a! - b!, 3);
  out.push(
    `new connection: VIP ${us(m.vip_p50_us)} vs direct ${us(m.direct_p50_us)} (x${m.vip_vs_direct_p50}): the mesh adds ` +
      `${d3(m.vip_p50_us, m.direct_p50_us)} us. With the socket-LB programs alone (connect4 & co., no sockops/sk_msg) ` +
      `the VIP costs ${us(m.vip_lb_only_p50_us)} (x${m.vip_lb_only_vs_direct_p50}, +${d3(m.vip_lb_only_p50_us, m.direct_p50_us)} us); ` +
      `with sockops too: ${d3(m.vip_p50_us, m.vip_lb_only_p50_us)} us more (sockops looks the peer up in ` +
      'mesh_listeners; this backend is not a meshed listener, so the socket stays out of the sockhash and sk_msg ' +
      `never runs). A meshed client dialling the backend address directly (no VIP): ${us(m.direct_in_mesh_p50_us)}.`,
  );
  out.push(
    `reused connection: VIP ${us(m.vip_reused_p50_us)} vs direct ${us(m.direct_reused_p50_us)} ` +
      `(x${m.vip_vs_direct_reused_p50}), LB programs only ${us(m.vip_lb_only_reused_p50_us)}; no program runs on ` +
      'this path (connect4 ran once; the socket is not in the sockhash, the backend not being meshed).',
  );
  out.push(
    `vs the HAProxy sidecar stand-in: new connection ${us(m.proxy_p50_us)} (VIP/proxy ${m.vip_vs_proxy_p50}), reused ` +
      `${us(m.proxy_reused_p50_us)} (${m.vip_vs_proxy_reused_p50}); two proxy hops as in a sidecar mesh: ` +
      `${us(m.proxy2_p50_us)} / ${us(m.proxy2_reused_p50_us)} (VIP/two-hop ${m.vip_vs_proxy2_p50}).`,
  );
  const sock = d.sockmap_check as { spliced: boolean; bytes_acked: number; bytes_sent: number } | undefined;
  out.push(
    `sockmap: meshed client -> meshed server, reused connection ${us(m.sockmap_p50_us)} vs the same without programs ` +
      `${us(m.sockmap_plain_p50_us)} (x${m.sockmap_vs_plain_p50}; Kmesh reports about 0.85); ` +
      (sock?.spliced
        ? `spliced: the client socket's TCP acked ${sock.bytes_acked} of ${sock.bytes_sent} bytes sent.`
        : `NOT spliced: TCP acked ${sock?.bytes_acked} of ${sock?.bytes_sent} bytes.`),
  );
  const mo = d.map_ops as { by_batch: MapOpsResult[] } | undefined;
  if (mo)
    out.push(
      'batch updates of mesh_slots, entries/s (reconciler op / BpfMapBackend.update on byte entries / bare addon / ' +
        'C floor): ' +
        mo.by_batch
          .map(
            (r) =>
              `N=${r.batch}: ${Math.round(r.per_s.backend)} / ${Math.round(r.per_s.entries)} / ` +
              `${Math.round(r.per_s.addon)} / ${Math.round(r.per_s.c_floor)}`,
          )
          .join('; '),
    );
  const head = mo?.by_batch.find((r) => r.batch === m.map_batch);
  if (head) {
    const us = (perS: number) => round((head.batch * 1e6) / perS, 4);
    const [b, e, a, c] = [
      us(head.per_s.backend),
      us(head.per_s.entries),
      us(head.per_s.addon),
      us(head.per_s.c_floor),
    ];
    const perEntry = (x: number) => Math.round(((x - a) * 1000) / head.batch);
    out.push(
      `at N=${head.batch} a batch takes ${b} us as the reconciler's op (byte-string keys/values written straight into the ` +
        `map's reused buffers), ${e} us through BpfMapBackend.update on byte entries, ${a} us as a bare addon call ` +
        `and ${c} us from C (best rounds): the addon is at ${round(c / a, 3)} of the floor; the backend's own ` +
        `JavaScript costs ${perEntry(b)} ns per entry from byte strings, ${perEntry(e)} ns from bytes. All reps pooled: ` +
        `${head.batch_us.backend.p50} / ${head.batch_us.entries.p50} / ${head.batch_us.addon.p50} / ` +
        `${head.batch_us.c_floor.p50} us.`,
    );
  }
  const sync = d.full_sync as { runs: FullSyncRun[] } | undefined;
  const r0 = sync?.runs[0];
  if (r0)
    out.push(
      `full sync of ${r0.entries.mesh_services} services / ${r0.entries.mesh_slots} slots / ${r0.entries.mesh_backends} ` +
        `backends: ${m.full_sync_10k_ms} ms (p50 of ${sync!.runs.length}): compile ${m.full_sync_compile_ms} ms, plan + ` +
        `${r0.batches} batched writes (${r0.ops} entries) + checkpoint ${m.full_sync_apply_ms} ms. Runs: ` +
        `${sync!.runs.map((r) => `${Math.round(r.total_ms)} ms wall / ${Math.round(r.process_cpu_ms)} ms CPU`).join(', ')} ` +
        '(the first is a cold agent: JIT warm-up; wall above CPU is time spent waiting for a core).',
    );
  const lat = d.latency as
    | {
        cases: Record<
          string,
          { slice_p50_us: number[]; slices_rerun_as_contended: number; slices_still_contended: number }
        >;
      }
    | undefined;
  if (lat) {
    const cs = Object.values(lat.cases);
    const rerun = cs.reduce((a, c) => a + c.slices_rerun_as_contended, 0);
    const still = cs.reduce((a, c) => a + c.slices_still_contended, 0);
    const kept = cs.reduce((a, c) => a + c.slice_p50_us.length, 0);
    out.push(
      `contention from other work on the machine: ${rerun} latency slices were re-run (p50 more than ` +
        `${d.contended_above}x the case's best slice); ${still} of ${kept} kept slices are still above it` +
        (still > kept / 10
          ? ': the latency numbers of this run are NOT reliable, run again on a quieter machine.'
          : '.'),
    );
  }
  out.push(...targetMisses(m, TARGETS, '.'));
  return out;
}
