import {
  type ApplyOutcome,
  BpfMapBackend,
  type CgroupIdOf,
  fakeCgroupId,
  type MapBackend,
  Reconciler,
} from '@meshplane/dataplane';
import type { MeshState } from '@meshplane/domain';
import { connectNats, followStream, provisionStatusBucket, streamName } from '@meshplane/messaging';
import { type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { AppliedWaiters } from './applied-waiters';
import { RevisionApplier } from './applier';
import { chooseBase, restoreHistory } from './bootstrap';
import type { AgentConfig } from './config';
import { logConsumerEvents } from './consumer-events';
import { type Dataplane, type DataplaneStatus, fromBpfBackend, openDataplane } from './dataplane';
import { consoleLogger, type Logger } from './logger';
import { AgentObserver } from './metrics';
import { NextTurn } from './next-turn';
import { resumeAfter } from './resume';
import { httpSnapshotSource, type SnapshotSource } from './snapshot';
import { DEFAULT_STATUS_INTERVAL_MS, StatusReporter } from './status';

/*
 * The node agent's loop (issue 4):
 *   1. read the checkpoint stored with the maps (never trust memory);
 *   2. rebuild the desired state: replay the stream from revision 1 when it
 *      still holds it and there is a checkpoint to resume, otherwise take the
 *      API snapshot (the maps hold compiled entries, not resources, so the
 *      state at the checkpoint must come from one of the two);
 *   3. consume the stream in order from the next revision (a push consumer per
 *      generation, reopened where it stopped: stream-tail.ts);
 *   4. per batch of buffered revisions (coalesced): evolve, compile, diff the
 *      touched keys against the maps, apply the ordered ops, checkpoint, report
 *      status (applier.ts).
 * A state older than the checkpoint is never applied (no rollback of maps on a
 * replay or a lagging snapshot). A gap in the revisions, or one that cannot
 * be decoded, sends the agent back to step 2. A failed apply is reported as
 * ERROR and retried by the reconciler with backoff; the checkpoint stays put.
 *
 * With the bpf dataplane the agent also keeps the cgroups of its node's workloads
 * (`<MESH_CGROUP>/<namespace>.<name>`), rescanned every MESH_CGROUP_SCAN_MS (applier.ts). A periodic full pass (MESH_RESYNC_MS) reads
 * every map back and repairs drift; repairs are logged and counted in the status value.
 */

export interface AgentDeps {
  /**
   * Default: from config.dataplane (openDataplane). A backend passed in is not closed by
   * stop(); a BpfMapBackend with a cgroup gets its workload cgroups managed as well.
   */
  backend?: MapBackend;
  /** Default: connectNats(config.natsUrl). A connection passed in is not closed by stop(). */
  nc?: NatsConnection;
  /** Default: GET <MESH_API_URL>/v1/snapshot; none when MESH_API_URL is unset. */
  snapshot?: SnapshotSource;
  /** Default: the workload cgroups' real ids (bpf), fakeCgroupId (memory backend only). */
  cgroupIdOf?: CgroupIdOf;
  log?: Logger;
  /** Pause before re-bootstrapping or retrying a missing stream; default 1 s. */
  retryMs?: number;
  /** Metrics and apply spans (main serves its metrics on MESH_METRICS_PORT); default a private one. */
  observer?: AgentObserver;
}

export interface AgentHandle {
  readonly node: string;
  readonly backend: MapBackend;
  readonly reconciler: Reconciler;
  status(): ReturnType<StatusReporter['current']>;
  /** The applied revision and its apply duration: what status() says, without the history (hot loops). */
  applied(): ReturnType<StatusReporter['applied']>;
  dataplane(): DataplaneStatus;
  /** The desired state in memory (tests, debugging). */
  state(): MeshState;
  /** Resolves once the maps hold `revision` or later (checkpoint written); timeoutMs Infinity: never rejects. */
  waitForRevision(revision: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startAgent(config: AgentConfig, deps: AgentDeps = {}): Promise<AgentHandle> {
  const log = deps.log ?? consoleLogger({ component: 'agent', node: config.node, cluster: config.cluster });
  const startedAt = new Date().toISOString();
  const ownBackend = !deps.backend;
  let dp: Dataplane;
  if (!deps.backend) dp = await openDataplane(config, log);
  else if (deps.backend instanceof BpfMapBackend)
    dp = fromBpfBackend(deps.backend, config.node, 'backend passed in', log);
  else {
    dp = {
      backend: deps.backend,
      info: { backend: deps.backend.kind === 'bpf' ? 'bpf' : 'memory', reason: 'backend passed in' },
      cgroupIdOf: fakeCgroupId,
    };
    if (deps.backend.kind === 'memory')
      log.info('memory map backend: maps are simulated, no traffic is steered', {
        stateFile: config.stateFile,
      });
  }
  const backend = dp.backend;
  const cgroups = dp.cgroups;
  const cgroupIdOf = deps.cgroupIdOf ?? dp.cgroupIdOf;
  const ownNc = !deps.nc;
  let nc: NatsConnection;
  try {
    nc =
      deps.nc ??
      (await connectNats(config.natsUrl, { name: `meshplane-agent/${config.cluster}/${config.node}` }));
  } catch (err) {
    if (ownBackend) await backend.close();
    throw err;
  }
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const snapshot =
    deps.snapshot ?? (config.apiUrl ? httpSnapshotSource(config.apiUrl, config.token) : undefined);
  const retryMs = deps.retryMs ?? 1000;
  const stream = streamName(config.cluster);

  const observer = deps.observer ?? new AgentObserver(config.node, config.cluster);
  let stopped = false;
  let wake: (() => void) | undefined;
  // A revision wakes the apply loop after this turn's I/O (next-turn.ts); stop() and a cgroup scan at once.
  const arrived = new NextTurn(() => wake?.());
  let stopConsumer: (() => void) | undefined;
  let lastRepairAt: string | null = null;
  let appliesSinceStart = 0;

  const dataplaneStatus = (): DataplaneStatus => {
    const out: DataplaneStatus = {
      ...dp.info,
      fullPasses: reconciler.stats.fullPasses,
      repairs: reconciler.stats.repairs,
      lastRepairAt,
      startedAt,
    };
    const c = applier.cgroupStatus();
    if (c) Object.assign(out, c, { cgroupRefreshes: applier.cgroupRefreshes });
    return out;
  };

  const reporter = new StatusReporter({
    node: config.node,
    cluster: config.cluster,
    agentVersion: config.agentVersion,
    recentApplies: config.recentApplies,
    minIntervalMs: config.statusIntervalMs ?? DEFAULT_STATUS_INTERVAL_MS,
    onPutError: (err) => log.warn('status write failed', { error: err.message }),
    extra: () => ({ dataplane: dataplaneStatus() }),
  });
  const onOutcome = (o: ApplyOutcome) => {
    observer.outcome(o);
    reporter.outcome(o, applier.backlog > 0, applier.receivedAtFor(o));
    if (o.ok) waiters.check();
    if (!o.ok) log.warn('apply failed', { revision: o.revision, error: o.error, retryInMs: o.retryInMs });
    else if (o.kind === 'full-pass' && o.ops > 0) {
      lastRepairAt = new Date(o.at).toISOString();
      log.warn('full pass repaired drift', {
        revision: o.revision,
        repairs: o.ops,
        totalRepairs: reconciler.stats.repairs,
        fullPasses: reconciler.stats.fullPasses,
      });
    } else if (o.kind === 'apply')
      log.info('applied', {
        revision: o.revision,
        ops: o.ops,
        batches: o.batches,
        durationMs: o.durationMs,
        // After a restart over pinned maps: 0 ops means the maps already held this state.
        firstSinceStart: ++appliesSinceStart === 1,
      });
    reporter.changed();
  };
  const reconciler = new Reconciler(observer.wrap(backend), {
    node: config.node,
    cluster: config.cluster,
    onOutcome,
  });

  const waiters = new AppliedWaiters(
    () => reconciler.meta?.appliedRevision ?? 0,
    () => {
      const s = reporter.current();
      return `${config.node} at ${s.appliedRevision}, ${s.state}, ${s.lastError ?? 'no error'}`;
    },
  );

  const applier = new RevisionApplier({
    node: config.node,
    reconciler,
    reporter,
    observer,
    log,
    cgroupIdOf,
    cgroups,
    stopped: () => stopped,
  });

  const bootstrap = (jsm: JetStreamManager, checkpoint: number, preferSnapshot: boolean) =>
    chooseBase({
      jsm,
      stream,
      checkpoint,
      preferSnapshot,
      snapshot,
      reporter,
      log,
      retryMs,
      stopped: () => stopped,
    });

  let resumeBackoff = 0;

  const consume = async (start: number): Promise<void> => {
    // A push consumer per call (stream-tail.ts): a lost delivery, missed heartbeats or a reconnect
    // end it with an error, and the loop below opens the next one from where this one stopped.
    // Each message is queued from the client's socket read (followStream), decoded there, and
    // the apply loop woken after this turn's I/O.
    const tail = await followStream(
      nc,
      js,
      jsm,
      { stream, startSeq: start, idleHeartbeatMs: config.consumerHeartbeatMs },
      (m) => {
        observer.received(m.seq);
        applier.enqueue(m.seq, m.data, m.info.pending, () => m.headers, Date.now());
        arrived.request();
      },
    );
    stopConsumer = () => tail.stop();
    applier.consumerStarted(start, tail.pendingAtStart);
    if (stopped) tail.stop();
    void logConsumerEvents(tail.status(), log);
    let failure: Error | undefined;
    let tailEnded = false;
    let tailError: unknown;
    const ended = tail.done
      .catch((err: unknown) => {
        tailError = err ?? new Error('revision consumer failed');
      })
      .finally(() => {
        tailEnded = true;
        wake?.();
      });
    // Applies run between reads, so that revisions arriving meanwhile pile up and coalesce.
    for (;;) {
      if (stopped) break;
      try {
        await applier.applyPending();
      } catch (err) {
        failure = err as Error;
        break;
      }
      if (applier.backlog > 0) continue; // arrived while applying: coalesce them now
      if (applier.identitiesPending) continue; // a workload cgroup changed
      if (tailEnded) break;
      // One fresh promise per wait, resolved by a revision, the tail's end, stop() or a cgroup scan.
      // Never a race with tail.done itself: each race leaves a reaction on a promise that stays
      // pending for the consumer's whole life, ~400 bytes kept per revision.
      await new Promise<void>((r) => {
        wake = r;
      });
    }
    tail.stop();
    await ended;
    if (failure) throw failure;
    if (tailError !== undefined) throw tailError;
  };

  const run = async (): Promise<void> => {
    const meta = await reconciler.load();
    let checkpoint = meta?.appliedRevision ?? 0;
    if (meta && (meta.node !== config.node || meta.cluster !== config.cluster)) {
      log.warn('maps were written for another node or cluster: not resuming their checkpoint', {
        metaNode: meta.node,
        metaCluster: meta.cluster,
      });
      checkpoint = 0;
    }
    reporter.restored(checkpoint, meta?.appliedAtMs);
    const kv = await untilDone(() => provisionStatusBucket(js, config.cluster), 'status bucket');
    await restoreHistory(kv, config, checkpoint, reporter, log);
    reporter.attach(kv);
    void reporter.publish();
    reconciler.startPeriodicFullPass(config.fullPassMs);
    let preferSnapshot = false;
    let needBootstrap = true;
    let start = 0;
    while (!stopped) {
      if (needBootstrap) {
        const base = await bootstrap(jsm, checkpoint, preferSnapshot);
        if (stopped || !base) break;
        applier.rebase(base.state, checkpoint);
        start = base.start;
        needBootstrap = false;
      }
      let pause = retryMs;
      const revisionBefore = applier.state.revision;
      try {
        await consume(start);
        if (!stopped) log.warn('revision consumer ended; resuming', { from: applier.state.revision + 1 });
        resumeBackoff = 0;
      } catch (err) {
        const message = (err as Error).message;
        const r = resumeAfter(err, {
          backoff: resumeBackoff,
          retryMs,
          progressed: applier.state.revision > revisionBefore,
        });
        resumeBackoff = r.backoff;
        pause = r.pauseMs;
        if (r.rebootstrap) {
          needBootstrap = true;
          preferSnapshot = true;
          log.warn(r.msg, { reason: message });
          reporter.setState('BOOTSTRAPPING', message);
        } else log[r.level](r.msg, { reason: message, from: applier.state.revision + 1, retryInMs: pause });
        void reporter.publish();
      }
      if (!stopped && pause > 0) await sleep(pause);
      start = applier.state.revision + 1;
      // Never go below what the maps already hold.
      checkpoint = Math.max(checkpoint, reconciler.meta?.appliedRevision ?? 0);
    }
  };

  // Retries start-up calls that only fail while NATS is unreachable.
  const untilDone = async <T>(fn: () => Promise<T>, what: string): Promise<T> => {
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        if (stopped) throw err;
        log.warn(`${what} not ready; retrying`, { error: (err as Error).message });
        await sleep(retryMs);
      }
    }
  };

  const heartbeat = setInterval(() => void reporter.publish(), config.heartbeatMs);
  heartbeat.unref();

  const scan = () => {
    if (applier.scanCgroups()) wake?.();
  };
  const scanTimer = cgroups ? setInterval(scan, config.cgroupScanMs ?? 2000) : undefined;
  scanTimer?.unref();
  const loop = run().catch((err: Error) => {
    log.error('agent loop failed', { error: err.message });
    reporter.setState('ERROR', err.message);
    void reporter.publish();
  });

  return {
    node: config.node,
    backend,
    reconciler,
    status: () => reporter.current(),
    applied: () => reporter.applied(),
    dataplane: dataplaneStatus,
    state: () => applier.state,
    waitForRevision: (revision, timeoutMs = 30_000) => waiters.wait(revision, timeoutMs),
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(heartbeat);
      clearInterval(scanTimer);
      stopConsumer?.();
      arrived.cancel();
      wake?.();
      reconciler.stop();
      await loop;
      reporter.setState('STOPPING');
      await reporter.close();
      if (ownNc) await nc.drain().catch(() => undefined);
      if (ownBackend) {
        await backend.close();
        if (backend.kind === 'bpf')
          log.info('maps and links stay pinned: traffic keeps flowing (MESH_TEARDOWN=1 removes them)', {
            pinDir: dp.info.pinDir,
          });
      }
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
