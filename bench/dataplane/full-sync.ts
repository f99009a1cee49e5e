import { compile, Reconciler } from '@meshplane/dataplane';
import { applyChanges, type Change, emptyState, type MeshState } from '@meshplane/domain';
import { nowMs, round } from '../lib';
import { type BenchSpace, NODE, service, workload } from './mesh';

/*
 * full_sync: an agent that starts on empty maps with a 10k-service mesh to apply.
 * 10,000 Services (one TCP port each, VIPs 127.100.x.y) × 3 Workloads (127.1.x.y) spread
 * over 10 nodes, this node being one of them (so a tenth of the workloads are local and
 * get identity names). Timed from an empty, freshly pinned set of maps to the checkpoint
 * written: allocator (reads the empty maps) + compile + Reconciler.apply (plan, ordered
 * batches of 1000 through BpfMapBackend, meta). Loading the object and building the
 * MeshState (the control plane's replay) are reported apart.
 */

export interface FullSyncOptions {
  services: number;
  backendsPerService: number;
  reps: number;
}

export function bigMesh(services: number, perService: number): { state: MeshState; buildMs: number } {
  const t0 = nowMs();
  const changes: Change[] = [];
  let j = 0;
  for (let i = 0; i < services; i++) {
    const app = `svc-${i}`;
    const vip = `127.100.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;
    changes.push(service(app, vip, [{ port: 80, protocol: 'TCP', targetPort: 8080 }], { app }));
    for (let b = 0; b < perService; b++, j++) {
      const node = j % 10 === 0 ? NODE : `node-${j % 10}`;
      const addr = `127.1.${Math.floor(j / 250)}.${1 + (j % 250)}`;
      changes.push(workload(`${app}-${b}`, addr, node, { app }));
    }
  }
  const state = applyChanges(emptyState(), changes, 1);
  return { state, buildMs: nowMs() - t0 };
}

export interface FullSyncRun {
  total_ms: number;
  open_ms: number;
  compile_ms: number;
  apply_ms: number;
  /** CPU time of this process (user + system) over total_ms: wall >> cpu means waiting for a core. */
  process_cpu_ms: number;
  ops: number;
  batches: number;
  entries: Record<string, number>;
}

export async function runFullSync(space: BenchSpace, state: MeshState, rep: number): Promise<FullSyncRun> {
  const t0 = nowMs();
  const backend = await space.backend(`sync-${rep}`);
  const open = nowMs() - t0;
  try {
    const rec = new Reconciler(backend, { node: NODE, cluster: 'bench' });
    await rec.load();
    const cpu0 = process.cpuUsage();
    const s0 = nowMs();
    const ids = await rec.allocator();
    const desired = compile(state, NODE, { ids, cgroupIdOf: backend.cgroupIdOf });
    const c1 = nowMs();
    const outcome = await rec.apply(desired);
    const s1 = nowMs();
    const cpu = process.cpuUsage(cpu0);
    rec.stop();
    if (!outcome.ok) throw new Error(`full sync failed: ${outcome.error}`);
    const entries: Record<string, number> = {};
    for (const map of ['mesh_services', 'mesh_slots', 'mesh_backends', 'mesh_id_names'] as const) {
      let k = 0;
      for await (const _ of backend.iterate(map)) k++;
      entries[map] = k;
    }
    const meta = await backend.readMeta();
    if (meta?.appliedRevision !== state.revision) throw new Error('full sync: checkpoint not written');
    return {
      total_ms: round(s1 - s0, 4),
      open_ms: round(open, 4),
      compile_ms: round(c1 - s0, 4),
      apply_ms: round(s1 - c1, 4),
      process_cpu_ms: round((cpu.user + cpu.system) / 1000, 4),
      ops: outcome.ops,
      batches: outcome.batches,
      entries,
    };
  } finally {
    await backend.teardown();
  }
}
