/*
 * Server restarts under the whole pipeline, on PRIVATE servers only (the shared Postgres and
 * NATS are never touched): the API (in this process) over a private Postgres, the relay and
 * three agents as child processes on a private NATS. A writer keeps committing through the API
 * (each logical change under one Idempotency-Key, retried until it is acknowledged) while NATS
 * and then Postgres restart. Nobody restarts or reconfigures any service: at the end every agent
 * holds the compiled head state and the stream holds every revision exactly once.
 */
import { PrivateNats, PrivatePostgres, sleep, waitFor } from '../harness';
import { deleteClusterNats, expectStreamMatchesLog, lastSeq, openLog, randomCluster } from '../relay/helpers';
import {
  type AgentNode,
  type Api,
  cleanupAll,
  commitChange,
  expectNodeMapsMatch,
  pipelineProcesses,
  removeTempDir,
  type ServiceProcess,
  type StatusReader,
  service,
  snapshotState,
  startApi,
  startPipeline,
  statusReader,
  tempDir,
  waitForApplied,
  workload,
} from './helpers';

const cluster = randomCluster('propf');
const NODES = ['n1', 'n2', 'n3'];
const SERVICES = 6;
/** How long each server stays down. */
const OUTAGE_MS = 1_000;

let dir: string;
let pg: PrivatePostgres | undefined;
let nats: PrivateNats | undefined;
let dbUrl: string;
let api: Api | undefined;
let reader: StatusReader | undefined;
let relay: ServiceProcess | undefined;
const agents: AgentNode[] = [];

/**
 * Change k: one of 60 workloads gets a weight other than its previous one (so every change is a
 * new revision), small weights keep the slot maps small.
 */
function writerChange(k: number) {
  const j = k % 60;
  const app = `psvc-${j % SERVICES}`;
  const weight = (Math.floor(k / 60) % 4) + 1;
  return {
    reason: `writer ${k}`,
    apply: [workload(`pw-${j}`, `127.0.1.${100 + j}`, NODES[j % 3]!, app, { weight })],
    delete: [],
  };
}

/**
 * A writer that outlives outages: each logical change is retried under its own Idempotency-Key
 * until it is acknowledged. `stop` lets the change in progress finish (so the count is exact),
 * bounded; after that bound the writer gives up for good (no request outlives the test).
 */
function startWriter(a: Api) {
  let running = true;
  let abandoned = false;
  let failures = 0;
  const revisions: number[] = [];
  const statuses = new Map<number, number>();
  const done = (async () => {
    for (let k = 0; running; k++) {
      const key = `${cluster}-w-${k}`;
      for (;;) {
        if (abandoned) return;
        let status = 0;
        try {
          const r = await a.callRaw('POST', '/v1/changes', writerChange(k), { 'idempotency-key': key });
          status = r.status;
          if (r.status === 201) {
            revisions.push(r.body.revision);
            break;
          }
        } catch {
          // connection refused or reset: the API process is fine, retry
        }
        // Only "server unavailable" is expected; a 4xx is a broken request, not an outage.
        if (status > 0 && status < 500) throw new Error(`writer: change ${k} got HTTP ${status}`);
        failures++;
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        await sleep(100);
      }
      await sleep(60);
    }
  })();
  // Surfaced by progress() and stop(); never an unhandled rejection meanwhile.
  done.catch(() => undefined);
  return {
    revisions,
    statuses,
    done,
    get committed() {
      return revisions.length;
    },
    get failures() {
      return failures;
    },
    async stop() {
      running = false;
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          done,
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error('writer did not finish within 30 s')), 30_000);
          }),
        ]);
      } finally {
        clearTimeout(timer);
        abandoned = true;
      }
    },
  };
}

beforeAll(async () => {
  dir = tempDir('faults');
  [pg, nats] = await Promise.all([PrivatePostgres.start(), PrivateNats.start()]);
  dbUrl = await pg.createDatabase('meshplane');
  api = await startApi(dbUrl, cluster, nats.url);
  reader = await statusReader(nats.url, cluster);
  const pipeline = pipelineProcesses({
    cluster,
    databaseUrl: dbUrl,
    natsUrl: nats.url,
    apiUrl: api.url,
    nodes: NODES,
    dir,
  });
  relay = pipeline.relay;
  agents.push(...pipeline.agents);
  await startPipeline(pipeline, reader);
}, 90_000);

afterAll(async () => {
  await cleanupAll([
    ['agents', () => Promise.all(agents.map((a) => a.stop()))],
    ['relay', () => relay?.stop()],
    ['api', () => api?.close()],
    [
      'stream and bucket',
      async () => {
        if (reader) await deleteClusterNats(reader.tools.jsm, cluster);
        await reader?.close();
      },
    ],
    ['private servers', () => Promise.all([pg?.destroy(), nats?.destroy()])],
    ['temp dir', () => removeTempDir(dir)],
  ]);
}, 90_000);

describe('NATS and Postgres restart mid-stream (private servers)', () => {
  it('relay and agents resume by themselves; every agent applies the head; the stream holds each revision once', async () => {
    const seed = await commitChange(
      api!,
      Array.from({ length: SERVICES }, (_, i) => service(`psvc-${i}`, `127.100.9.${i + 1}`)),
    );
    await waitForApplied(reader!, agents, seed, 20_000);
    const pids = agents.map((a) => a.pid);
    const relayPid = relay!.pid;

    const writer = startWriter(api!);
    const steps: string[] = [];
    /** Lets the writer commit `n` more, then waits for every node to apply what it has committed. */
    const progress = async (n: number, what: string) => {
      const target = writer.committed + n;
      await Promise.race([
        waitFor(() => writer.committed >= target, { timeoutMs: 30_000, what: `${n} commits ${what}` }),
        writer.done.then(() => {
          throw new Error('writer stopped');
        }),
      ]);
      const t0 = Date.now();
      await waitForApplied(reader!, agents, writer.revisions.at(-1)!, 40_000);
      steps.push(`${what}: applied in ${Date.now() - t0} ms`);
    };
    /** Right after a server is back: every node applies what was committed until then. */
    const caughtUp = async (server: string) => {
      const t0 = Date.now();
      const backlog = writer.revisions.at(-1)!;
      await waitForApplied(reader!, agents, backlog, 40_000);
      steps.push(`all nodes at ${backlog} ${Date.now() - t0} ms after ${server} was back`);
    };
    try {
      await progress(10, 'before the restarts');

      // NATS goes away for a second (graceful stop, same store dir): commits go on in Postgres,
      // so the relay has a backlog to publish and the agents one to apply once it is back.
      const t1 = Date.now();
      const beforeNats = writer.committed;
      await nats!.stop();
      await sleep(OUTAGE_MS);
      await nats!.start();
      steps.push(`nats down ${Date.now() - t1} ms (${writer.committed - beforeNats} commits meanwhile)`);
      expect(writer.committed).toBeGreaterThan(beforeNats);
      await caughtUp('NATS');
      await progress(10, 'after the NATS restart');

      // Postgres goes away for a second (fast shutdown): writes fail (503) and are retried under
      // their idempotency keys; the relay loses its leader lock session and must take it again.
      const t2 = Date.now();
      const failuresBefore = writer.failures;
      await pg!.stop('fast');
      await sleep(OUTAGE_MS);
      await pg!.start();
      steps.push(`postgres down ${Date.now() - t2} ms (${writer.failures - failuresBefore} failed writes)`);
      await caughtUp('Postgres');
      await progress(10, 'after the Postgres restart');
    } finally {
      await writer.stop();
    }

    const head = (await api!.call('GET', '/v1/revisions?limit=1')).headRevision as number;
    // Every logical change became exactly one revision, retries and outages notwithstanding.
    expect(head).toBe(seed + writer.committed);
    expect(writer.revisions).toEqual(Array.from({ length: writer.committed }, (_, i) => seed + 1 + i));
    expect(writer.failures).toBeGreaterThan(0); // the Postgres outage was real

    const statuses = await waitForApplied(reader!, agents, head, 40_000);

    // The stream: sequence == revision, each revision once, the same change sets as the log.
    await waitFor(async () => (await lastSeq(reader!.tools.jsm, cluster)) >= head, {
      timeoutMs: 15_000,
      what: 'the stream to hold the head',
    });
    const store = await openLog(dbUrl, cluster);
    try {
      const { msgs } = await expectStreamMatchesLog(reader!.tools.jsm, cluster, store);
      expect(msgs).toHaveLength(head);
    } finally {
      await store.close();
    }

    // Every agent holds exactly the compiled head state.
    const state = await snapshotState(api!);
    expect(state.revision).toBe(head);
    for (const a of agents) await expectNodeMapsMatch(a.opts.stateFile, state, a.node, cluster);

    // Nobody was restarted: the same processes did it all, and never applied a revision twice.
    expect(agents.map((a) => (a.alive ? a.pid : `dead: ${a.describe()}`))).toEqual(pids);
    expect(relay!.crashed).toBeUndefined();
    expect(relay!.pid).toBe(relayPid);
    for (const a of agents) {
      const writing = a
        .applies()
        .filter((x) => x.ops > 0)
        .map((x) => x.revision);
      expect({ node: a.node, writing }).toEqual({
        node: a.node,
        writing: [...new Set(writing)].sort((x, y) => x - y),
      });
      const recent = statuses.get(a.node)!.recentApplies!.map((r) => r.revision);
      for (let i = 1; i < recent.length; i++) expect(recent[i]!).toBeGreaterThan(recent[i - 1]!);
      expect(recent.at(-1)).toBe(head);
      expect(a.logs.filter((l) => l.level === 'error')).toEqual([]);
    }

    // Operators see it too: every node SYNCED at the head.
    const nodes = await waitFor(
      async () => {
        const r = await api!.callRaw('GET', '/v1/nodes');
        return r.status === 200 ? r.body : undefined;
      },
      { timeoutMs: 10_000, what: 'GET /v1/nodes' },
    );
    expect(nodes.headRevision).toBe(head);
    // biome-ignore lint/suspicious/noExplicitAny: response rows
    expect(nodes.items.map((n: any) => [n.node, n.state, n.appliedRevision])).toEqual(
      NODES.map((n) => [n, 'SYNCED', head]),
    );

    process.stdout.write(
      `faults: head ${head}, ${writer.committed} writer commits, ${writer.failures} failed attempts ` +
        `(${[...writer.statuses].map(([s, c]) => `${s || 'network'}x${c}`).join(' ')}); ${steps.join('; ')}; ` +
        `relay leaderships ${relay!.logs.filter((l) => l.msg === 'leadership acquired').length}\n`,
    );
  }, 120_000);
});
