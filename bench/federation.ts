/*
 * `npm run bench -- federation [--iterations N]`: how much slower a change reaches another
 * cluster's data plane than its own. Two clusters on this machine (test/federation/harness:
 * private nats-servers with JetStream domains and a leafnode link, one database each, relay,
 * importer and a memory-backend agent per cluster, all in this process):
 *
 *   cross: commit in east (a new backend of the exported `web`) -> west's agent holds it in its maps
 *          (east relay -> export stream -> sourced into west's import stream over the leafnode ->
 *           west importer appends the import -> west relay -> west agent)
 *   local: commit in west (a new backend of west's own `loc`) -> west's agent holds it
 *
 * Both are measured the same way (polling the agent's maps every 2 ms), interleaved in one run.
 * Results in bench/results/federation.json; target cross_vs_local_p99 <= 3.
 */
import os from 'node:os';
import {
  type FedCluster,
  service,
  startFederation,
  stopFederation,
  workload,
} from '../test/federation/harness';
import { percentile, round } from './lib';
import { serverVersion } from './lib/db';
import { formatTable, machineInfo, printMachine, type Target, writeResults } from './lib/results';

const TARGETS: Record<string, Target> = { cross_vs_local_p99: { op: '<=', threshold: 3 } };
const WEB = '127.100.9.1:9080/TCP';
const LOC = '127.100.9.2:9080/TCP';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isInteger(v) || v < 1 || v > 250) throw new Error(`--${name} must be an integer 1..250`);
  return v;
}

/** ms from just before the commit until `cluster`'s agent maps show `addr` behind `frontend`. */
async function timeToMaps(
  commitIn: FedCluster,
  seenIn: FedCluster,
  frontend: string,
  name: string,
  addr: string,
  app: string,
): Promise<number> {
  const t0 = performance.now();
  await commitIn.commit([workload(name, addr, app)], `bench: ${name}`);
  const want = `${addr}:9080/TCP`;
  const deadline = Date.now() + 30_000;
  while (!(await seenIn.slots(frontend)).includes(want)) {
    if (Date.now() > deadline) throw new Error(`${want} never reached ${seenIn.name}'s maps (${frontend})`);
    await new Promise((r) => setTimeout(r, 2));
  }
  return performance.now() - t0;
}

export async function main(): Promise<void> {
  const iterations = arg('iterations', 40);
  const startedAt = new Date();
  const machine = machineInfo(
    await serverVersion(process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres'),
  );
  const clusters = await startFederation(['east', 'west'], { cacheTtlMs: 60_000, probeMs: 500 });
  let exitCode = 0;
  try {
    const [east, west] = clusters as [FedCluster, FedCluster];
    await east.commit([service('web', '127.100.9.1'), workload('web-0', '127.0.2.1', 'web')]);
    await west.commit([
      service('loc', '127.100.9.2', { export: false }),
      workload('loc-0', '127.0.3.1', 'loc'),
    ]);
    // Warm-up: both paths once (import stream consumer, agent bootstrap).
    await timeToMaps(east, west, WEB, 'web-w', '127.0.2.250', 'web');
    await timeToMaps(west, west, LOC, 'loc-w', '127.0.3.250', 'loc');
    const cross: number[] = [];
    const local: number[] = [];
    for (let i = 1; i <= iterations; i++) {
      // Interleaved, so that both see the same background load.
      cross.push(await timeToMaps(east, west, WEB, `web-${i}`, `127.0.2.${i + 1}`, 'web'));
      local.push(await timeToMaps(west, west, LOC, `loc-${i}`, `127.0.3.${i + 1}`, 'loc'));
    }
    const metrics = {
      cross_p50_ms: round(percentile(cross, 50), 4),
      cross_p99_ms: round(percentile(cross, 99), 4),
      local_p50_ms: round(percentile(local, 50), 4),
      local_p99_ms: round(percentile(local, 99), 4),
      cross_vs_local_p99: round(percentile(cross, 99) / percentile(local, 99), 3),
      cross_vs_local_p50: round(percentile(cross, 50) / percentile(local, 50), 3),
    };
    const durationMs = Date.now() - startedAt.getTime();
    const file = writeResults({
      benchmark: 'federation',
      metrics,
      targets: TARGETS,
      params: { iterations, clusters: 2, leafnode: 'west -> east hub', probeMs: 500 },
      details: {
        method:
          'commit via EventStore.append in the origin cluster; applied = the new backend address appears in the ' +
          "slot table of the frontend in west's agent maps (MemoryMapBackend, polled every 2 ms); cross and local " +
          'interleaved in one run; everything (2 nats-servers aside) in one Node process on this machine',
        loadAverageAtEnd: os.loadavg().map((x) => round(x, 4)),
        crossSamplesMs: cross.map((x) => round(x, 4)),
        localSamplesMs: local.map((x) => round(x, 4)),
      },
      machine,
      startedAt,
      durationMs,
    });
    process.stdout.write(`\nfederation on ${printMachine(machine)}\n\n${formatTable(metrics, TARGETS)}\n`);
    process.stdout.write(
      `load average at end: ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}\nwritten ${file}\n`,
    );
  } catch (err) {
    process.stderr.write(`federation bench failed: ${(err as Error).stack ?? String(err)}\n`);
    exitCode = 1;
  } finally {
    await stopFederation(clusters);
  }
  process.exitCode = exitCode;
}

if (require.main === module) void main();
