/**
 * `node dist/bench/event-store/profile-append.js [appends] [writers]`: a V8 CPU profile of
 * EventStore.append alone (no floor, no diagnostics), to see where the appending
 * process spends its time. Prints the summary as JSON.
 */
import { EventStore, migrateToLatest } from '@meshplane/event-store';
import { TempDatabases } from '../lib';
import { summarizeProfile, withCpuProfile } from '../lib/cpu-profile';
import { appendOpts, WorkloadStream } from './workload';

async function main(): Promise<void> {
  const total = Number(process.argv[2] ?? 3000);
  const writers = Number(process.argv[3] ?? 8);
  const dbs = new TempDatabases();
  const db = await dbs.create('bench_es_profile');
  try {
    await migrateToLatest(db.url);
    const store = await EventStore.open({ databaseUrl: db.url, poolSize: writers + 2, snapshotInterval: 0 });
    const stream = new WorkloadStream(10_000);
    let left = total;
    const run = () =>
      Promise.all(
        Array.from({ length: writers }, async (_, w) => {
          while (left-- > 0) await store.append(stream.changeSet(10), appendOpts(`w-${w}`, 'bench: profile'));
        }),
      );
    left = 1000;
    await run(); // warm-up: population and JIT
    left = total;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const { profile } = await withCpuProfile(run);
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const s = summarizeProfile(profile, { top: 30 });
    console.log(
      JSON.stringify(
        {
          per_s: Math.round((total / ms) * 1000),
          cpu_ms_per_append: (cpu.user + cpu.system) / 1000 / total,
          busy_ms_per_append: s.busyMs / total,
          selfByGroup: s.selfByGroup,
          topSelf: s.topSelf,
        },
        null,
        1,
      ),
    );
    await store.close();
  } finally {
    await dbs.drop(db);
  }
}

void main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
