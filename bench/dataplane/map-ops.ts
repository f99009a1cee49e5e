import { execFileSync } from 'node:child_process';
import path from 'node:path';
import {
  BPF_ANY,
  type BpfMapBackend,
  codecs,
  executeOp,
  loadAddon,
  type MapEntry,
  type Op,
  toByteString,
} from '@meshplane/dataplane';
import { round, summarize } from '../lib';
import type { BenchSpace } from './mesh';
import type { NativeTools } from './procs';

/*
 * Batch map updates, four ways, against the SAME pinned mesh_slots map (a maps-only
 * backend of its own), interleaved round by round:
 *
 *   backend   executeOp(backend, op): the Reconciler's write of one batch. The op holds
 *             byte-string keys and values (one char per byte), as plan() takes them from
 *             compile()'s map sets (made beforehand); the timed part is
 *             BpfMapBackend.updateStrings' checks, its concatenation and latin1 write
 *             straight into the map's reused key and value buffers, the addon call and its
 *             bpf_map_update_batch syscall.
 *   entries   BpfMapBackend.update('mesh_slots', entries) on entries encoded as bytes
 *             beforehand: checks, packing into the reused buffers, addon, syscall.
 *   addon     the addon's updateBatch on buffers packed beforehand (N-API + syscall only).
 *   c_floor   bench/dataplane/map-floor.c: bpf_map_update_batch from C linked to libbpf,
 *             same keys, same values, same flags (BPF_ANY), filling its arrays inside the
 *             timed loop.
 *
 * Every timed batch REPLACES N existing entries (one untimed insert first), with new values
 * each rep. Per round and way, the rate is N / the median batch time of its reps; a way's
 * rate is its best round (other work on the shared machine only ever slows a round down,
 * and it hits the three ways unevenly). The rates over all reps pooled are kept as well.
 */

const KEY_BASE = 1_000_000; // service ids far above anything the bench's other maps use

export interface MapOpsOptions {
  batch: number;
  reps: number;
  rounds: number;
}

function entries(n: number, rep: number): MapEntry[] {
  const out: MapEntry[] = new Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = [
      codecs.slotKey.encode({ service_id: KEY_BASE + Math.floor(i / 4096), generation: 1, slot: i % 4096 }),
      codecs.slotValue.encode({ backend_id: i + 1 + rep }),
    ];
  }
  return out;
}

// Keys and values as the encoders make them for map sets (one flat string each), not
// sliced from one big string: the op must cost what a compiled op costs.
function stringOp(es: MapEntry[]): Op {
  return {
    action: 'update',
    map: 'mesh_slots',
    keys: es.map(([k]) => codecs.slotKey.encodeStr(codecs.slotKey.decode(k))),
    values: es.map(([, v]) => codecs.slotValue.encodeStr(codecs.slotValue.decode(v))),
  };
}

const nowNs = () => process.hrtime.bigint();

const WAYS = ['backend', 'entries', 'addon', 'c_floor'] as const;
type Way = (typeof WAYS)[number];
type PerWay<T> = Record<Way, T>;

export interface MapOpsResult {
  batch: number;
  /** Best round of each way. */
  per_s: PerWay<number>;
  /** N / the median batch time over all reps of all rounds. */
  per_s_pooled: PerWay<number>;
  batch_us: PerWay<{ p50: number; mean: number; min: number }>;
  round_per_s: PerWay<number[]>;
}

const perWay = <T>(f: (w: Way) => T): PerWay<T> =>
  Object.fromEntries(WAYS.map((w) => [w, f(w)])) as PerWay<T>;

export async function runMapOps(
  backend: BpfMapBackend,
  tools: NativeTools,
  opts: MapOpsOptions,
): Promise<MapOpsResult> {
  const n = opts.batch;
  const addon = loadAddon();
  const info = backend.mapInfo('mesh_slots');
  const pin = path.join(backend.pinDir, 'mesh_slots');
  // Untimed: insert the keys, and check that both sides write the same bytes.
  await backend.update('mesh_slots', entries(n, 0));
  const prepared = Array.from({ length: opts.reps }, (_, r) => entries(n, r));
  const ops = prepared.map(stringOp);
  if (ops[0]!.keys[0] !== toByteString(prepared[0]![0]![0])) throw new Error('op keys are not the entries');
  const packed = prepared.map((es) => ({
    keys: Buffer.concat(es.map(([k]) => k)),
    values: Buffer.concat(es.map(([, v]) => v)),
  }));

  const times: PerWay<number[]> = { backend: [], entries: [], addon: [], c_floor: [] };
  const roundRates: PerWay<number[]> = { backend: [], entries: [], addon: [], c_floor: [] };
  const rate = (ns: number[]) => round((n * 1e9) / summarize(ns).p50, 4);
  for (let r = 0; r < opts.rounds; r++) {
    const order = WAYS.map((_, i, a) => a[(i + r) % a.length]!);
    for (const way of order) {
      const ns: number[] = [];
      if (way === 'backend') {
        for (const op of ops) {
          const t0 = nowNs();
          await executeOp(backend, op);
          ns.push(Number(nowNs() - t0));
        }
      } else if (way === 'entries') {
        for (const es of prepared) {
          const t0 = nowNs();
          await backend.update('mesh_slots', es);
          ns.push(Number(nowNs() - t0));
        }
      } else if (way === 'addon') {
        for (const p of packed) {
          const t0 = nowNs();
          addon.updateBatch(info.fd, p.keys, p.values, n, BPF_ANY);
          ns.push(Number(nowNs() - t0));
        }
      } else {
        const out = execFileSync(tools.mapFloor, [pin, String(n), String(opts.reps), String(KEY_BASE)], {
          encoding: 'utf8',
          timeout: 60_000,
        });
        const res = JSON.parse(out) as { ok: boolean; error?: string; rep_ns: number[] };
        if (!res.ok) throw new Error(`map-floor: ${res.error}`);
        ns.push(...res.rep_ns);
      }
      times[way].push(...ns);
      roundRates[way].push(rate(ns));
    }
  }
  // Cross-check: one more C rep (rep 0 writes backend_id = i + 1) must leave exactly the
  // bytes the Node side encodes for rep 0.
  execFileSync(tools.mapFloor, [pin, String(n), '1', String(KEY_BASE)], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  const first = entries(n, 0);
  for (const i of [0, n - 1]) {
    const got = await backend.lookup('mesh_slots', first[i]![0]);
    if (!got || Buffer.compare(Buffer.from(got), Buffer.from(first[i]![1])) !== 0)
      throw new Error(
        `map-floor wrote other bytes than the Node side for entry ${i} (key/value layout differs)`,
      );
  }
  await backend.delete(
    'mesh_slots',
    first.map(([k]) => k),
  );
  const s = (ns: number[]) => {
    const x = summarize(ns);
    return { p50: round(x.p50 / 1000, 4), mean: round(x.mean / 1000, 4), min: round(x.min / 1000, 4) };
  };
  return {
    batch: n,
    per_s: perWay((w) => Math.max(...roundRates[w])),
    per_s_pooled: perWay((w) => rate(times[w])),
    batch_us: perWay((w) => s(times[w])),
    round_per_s: roundRates,
  };
}

/** Part 2 of the bench: a maps-only backend of its own, batches of 100, `mapBatch` and 10k. */
export async function runMapOpsPhase(
  space: BenchSpace,
  tools: NativeTools,
  args: { mapBatch: number; mapReps: number; mapRounds: number },
  log: (msg: string) => void,
): Promise<MapOpsResult[]> {
  const mapBackend = await space.backend('map-ops');
  const byBatch: MapOpsResult[] = [];
  for (const batch of [...new Set([100, args.mapBatch, 10_000])].sort((a, b) => a - b)) {
    const r = await runMapOps(mapBackend, tools, { batch, reps: args.mapReps, rounds: args.mapRounds });
    byBatch.push(r);
    log(
      `map ops N=${batch}: op ${Math.round(r.per_s.backend)}/s, entries ${Math.round(r.per_s.entries)}/s, ` +
        `addon ${Math.round(r.per_s.addon)}/s, C ${Math.round(r.per_s.c_floor)}/s`,
    );
  }
  await mapBackend.teardown();
  return byBatch;
}

/** What --map-ops-only prints: per batch size the best-round rates and the ratio to the C floor. */
export function mapOpsSummary(byBatch: MapOpsResult[], headBatch: number): Record<string, unknown> {
  const head = byBatch.find((r) => r.batch === headBatch);
  return {
    batch_vs_c_floor: head ? round(head.per_s.backend / head.per_s.c_floor, 3) : undefined,
    by_batch: byBatch.map((r) => ({
      batch: r.batch,
      per_s: r.per_s,
      vs_c_floor: round(r.per_s.backend / r.per_s.c_floor, 3),
      pooled_vs_c_floor: round(r.per_s_pooled.backend / r.per_s_pooled.c_floor, 3),
      batch_us_p50: perWay((w) => r.batch_us[w].p50),
      round_per_s: r.round_per_s,
    })),
  };
}
