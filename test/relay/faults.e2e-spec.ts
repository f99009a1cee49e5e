import { randomBytes } from 'node:crypto';
import { EventStore, migrateToLatest } from '@meshplane/event-store';
import { loadRelayConfig, type RelayHandle, startRelay } from '../../services/relay/src';
import { PrivateNats, PrivatePostgres, sleep, waitFor } from '../harness';
import {
  expectStreamMatchesLog,
  guardCheckedOutClients,
  type NatsTools,
  natsTools,
  randomCluster,
  workload,
} from './helpers';

/**
 * Server faults on private instances only: the shared Postgres and NATS are never stopped. The
 * relay runs in-process (its metrics are visible) while a writer keeps committing through every
 * restart; the stream must end up holding exactly the log.
 */
describe('relay across Postgres and NATS restarts (private servers)', () => {
  const cluster = randomCluster('rr');
  let pg: PrivatePostgres;
  let nats: PrivateNats;
  let dbUrl: string;
  let store: EventStore;
  let tools: NatsTools;
  let relay: RelayHandle | undefined;
  const logs: Record<string, unknown>[] = [];

  beforeAll(async () => {
    [pg, nats] = await Promise.all([PrivatePostgres.start(), PrivateNats.start()]);
    dbUrl = await pg.createDatabase('meshplane');
    await migrateToLatest(dbUrl);
    store = await EventStore.open({ databaseUrl: dbUrl, cluster, poolSize: 3, snapshotInterval: 0 });
    guardCheckedOutClients(store.pool);
    tools = await natsTools(nats.url);
  });

  afterAll(async () => {
    await relay?.stop();
    await tools?.close().catch(() => undefined);
    await store?.close().catch(() => undefined);
    await Promise.all([pg?.destroy(), nats?.destroy()]);
  });

  /** A writer that survives outages: each logical change retries under one idempotency key. */
  function startWriter() {
    let running = true;
    let committed = 0;
    let failures = 0;
    const done = (async () => {
      while (running) {
        const key = randomBytes(8).toString('hex');
        for (;;) {
          try {
            await store.append([workload(`w-${key}`, committed)], {
              actor: 'writer',
              reason: 'fault test',
              idempotencyKey: key,
            });
            committed++;
            break;
          } catch {
            failures++;
            if (!running) return;
            await sleep(100);
          }
        }
        await sleep(10);
      }
    })();
    return {
      get committed() {
        return committed;
      },
      get failures() {
        return failures;
      },
      async stop() {
        running = false;
        await done;
      },
    };
  }

  const published = () => relay!.metrics.lastPublishedRevision;
  const publishedPast = async (n: number, what: string) =>
    waitFor(() => published() >= n, { timeoutMs: 30_000, intervalMs: 50, what });

  it('resumes by itself after NATS and Postgres restarts; nothing lost, nothing repeated', async () => {
    relay = await startRelay({
      ...loadRelayConfig({
        MESH_CLUSTER: cluster,
        DATABASE_URL: dbUrl,
        NATS_URL: nats.url,
        MESH_RELAY_LOCK_RETRY_MS: '200',
        MESH_RELAY_SESSION_CHECK_MS: '500',
        MESH_RELAY_POLL_MS: '500',
      }),
      logSink: (l) => logs.push(l),
    });
    const writer = startWriter();
    try {
      await publishedPast(20, 'first revisions to be published');

      // 1. NATS restarts (graceful stop, same store dir) while commits continue.
      await nats.restart();
      const afterNats = writer.committed + 10;
      await waitFor(() => writer.committed >= afterNats, {
        timeoutMs: 30_000,
        what: 'writes after NATS restart',
      });
      await publishedPast(afterNats, 'publishing to resume after the NATS restart');

      // 2. Postgres restarts: the lock session dies, so leadership is lost and re-acquired.
      const leaderships = relay.metrics.leadershipsTotal;
      await pg.restart();
      const afterPg = writer.committed + 10;
      await waitFor(() => writer.committed >= afterPg, {
        timeoutMs: 30_000,
        what: 'writes after Postgres restart',
      });
      await publishedPast(afterPg, 'publishing to resume after the Postgres restart');
      expect(relay.metrics.leadershipsTotal).toBeGreaterThan(leaderships);

      // 3. Both crash (SIGKILL) at once; each recovers its own store on start.
      await Promise.all([nats.kill9(), pg.kill9()]);
      await sleep(300);
      await Promise.all([nats.start(), pg.start()]);
      const afterCrash = writer.committed + 10;
      await waitFor(() => writer.committed >= afterCrash, {
        timeoutMs: 30_000,
        what: 'writes after the crash',
      });
      await publishedPast(afterCrash, 'publishing to resume after the crash');
    } finally {
      await writer.stop();
    }

    const head = (await store.head()).revision;
    await publishedPast(head, 'the relay to publish the head');
    expect(writer.failures).toBeGreaterThan(0); // the outages were real
    const { msgs } = await expectStreamMatchesLog(tools.jsm, cluster, store);
    expect(msgs).toHaveLength(head);
    expect(relay.metrics).toMatchObject({ role: 'leader', lagRevisions: 0, blockedReason: null });
    expect(logs.some((l) => l.msg === 'leadership lost; publishing stopped')).toBe(true);
    process.stdout.write(
      `faults: ${head} revisions, ${writer.failures} failed writes retried, ` +
        `${relay.metrics.leadershipsTotal} leaderships, ${relay.metrics.resyncsTotal} resyncs\n`,
    );
  });
});
