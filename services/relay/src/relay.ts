import { createKysely, createPool, LogReader, SnapshotRepository } from '@meshplane/event-store';
import {
  connectNats,
  isWrongLastSequence,
  provisionRevisionStream,
  provisionStatusBucket,
  statusBucket,
  streamName,
} from '@meshplane/messaging';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import { type RelayConfig, redactUrl } from './config';
import { ExportPublisher } from './export-publisher';
import { LeaderSession, relayLockKey } from './leader-session';
import { createLogger, errorFields, type Logger } from './logger';
import { RelayMetrics } from './metrics';
import { NatsReconnectedError, RelayBlockedError, RevisionPublisher } from './publisher';
import { sleep, Waker } from './waker';

export interface RelayHandle {
  /** Plain getters: role, last published revision, head, lag, counters. */
  readonly metrics: RelayMetrics;
  /** Stops publishing, releases the lock, drains NATS, closes the pool. Idempotent. */
  stop(): Promise<void>;
}

/** Errors repeat while a dependency is down; log a given message at most this often. */
const REPEAT_LOG_MS = 30_000;
const MAX_BACKOFF_MS = 2_000;

/**
 * Starts the relay in the background and returns at once: Postgres and NATS may be down at start
 * and come back later, which the relay waits for rather than exiting. Throws only for an invalid
 * configuration.
 */
export async function startRelay(config: RelayConfig): Promise<RelayHandle> {
  streamName(config.cluster); // validates the cluster name before anything runs
  const relay = new Relay(config);
  relay.start();
  return { metrics: relay.metrics, stop: () => relay.stop() };
}

class Relay {
  readonly metrics: RelayMetrics;
  private readonly log: Logger;
  private readonly stopController = new AbortController();
  private readonly waker = new Waker();
  private readonly stream: string;
  private store: LogReader | undefined;
  private pool: pg.Pool | undefined;
  private nc: NatsConnection | undefined;
  private loop: Promise<void> | undefined;
  private readonly lastLogged = new Map<string, number>();
  /** The leader's publisher, told when NATS reconnects (its in-flight acks may never come). */
  private publisher: RevisionPublisher | undefined;

  constructor(private readonly cfg: RelayConfig) {
    this.metrics = new RelayMetrics(cfg.cluster);
    this.stream = streamName(cfg.cluster);
    this.log = createLogger(
      cfg.logLevel,
      { service: 'relay', cluster: cfg.cluster, instance: cfg.instanceId },
      cfg.logSink,
    );
  }

  private get stopping(): boolean {
    return this.stopController.signal.aborted;
  }

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    if (!this.stopping) this.log.info('relay stopping');
    this.stopController.abort();
    this.waker.wake();
    await this.loop;
  }

  private async run(): Promise<void> {
    this.log.info('relay starting', {
      database: redactUrl(this.cfg.databaseUrl),
      nats: redactUrl(this.cfg.natsUrl),
      stream: this.stream,
      bucket: statusBucket(this.cfg.cluster),
      pollMs: this.cfg.pollMs,
      ...(this.cfg.streamMaxMsgs ? { streamMaxMsgs: this.cfg.streamMaxMsgs } : {}),
    });
    let backoff = 250;
    while (!this.stopping) {
      try {
        await this.connect();
        const session = await this.acquire();
        if (!session) continue;
        backoff = 250;
        let steppedDown = false;
        try {
          steppedDown = await this.lead(session);
        } finally {
          this.metrics.setRole(this.stopping ? 'stopped' : 'standby');
          await session.close();
        }
        // Leave the lock free for a while so that an instance with working connections takes it.
        if (steppedDown) await sleep(this.cfg.lockRetryMs * 4, this.stopController.signal);
      } catch (err) {
        if (this.stopping) break;
        this.log.error('relay loop failed; retrying', { ...errorFields(err), retryInMs: backoff });
        await sleep(backoff, this.stopController.signal);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
    await this.shutdown();
  }

  /** Opens the read pool and the NATS connection once; both reconnect by themselves afterwards. */
  private async connect(): Promise<void> {
    while (!this.store && !this.stopping) {
      const pool = this.openPool();
      try {
        await pool.query('SELECT 1');
        this.pool = pool;
        this.store = new LogReader(createKysely(pool));
        this.log.info('database connected');
      } catch (err) {
        await pool.end().catch(() => undefined);
        this.logRepeated('warn', 'database unavailable; retrying', errorFields(err));
        await sleep(this.cfg.lockRetryMs, this.stopController.signal);
      }
    }
    while (!this.nc && !this.stopping) {
      try {
        this.nc = await connectNats(this.cfg.natsUrl, {
          name: `meshplane-relay/${this.cfg.instanceId}`,
          firstConnectTimeoutMs: 5_000,
          signal: this.stopController.signal,
        });
        this.log.info('nats connected', { server: this.nc.getServer() });
        void this.watchNats(this.nc);
      } catch (err) {
        if (!this.stopping) this.logRepeated('warn', 'nats unavailable; retrying', errorFields(err));
      }
    }
  }

  /**
   * The read pool. pg emits 'error' on a *checked-out* client whose server goes away (restart,
   * crash), and pg-pool listens only on idle ones: without a listener on every client, a query in
   * flight during a Postgres restart would crash the process. The failed query still rejects, and
   * the pool drops the broken client, so the listener only has to log.
   */
  private openPool(): pg.Pool {
    const pool = createPool(this.cfg.databaseUrl, {
      max: 4,
      applicationName: `meshplane-relay/${this.cfg.instanceId}`.slice(0, 63),
      onError: (err) => this.logRepeated('warn', 'database connection lost', errorFields(err)),
    });
    pool.on('connect', (client) => {
      client.on('error', (err) => this.logRepeated('warn', 'database connection lost', errorFields(err)));
    });
    return pool;
  }

  private async watchNats(nc: NatsConnection): Promise<void> {
    try {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') this.log.warn('nats disconnected', { server: s.server });
        else if (s.type === 'reconnect') {
          this.log.info('nats reconnected', { server: s.server });
          this.publisher?.connectionReset();
          this.waker.wake();
        }
      }
    } catch {
      // The iterator ends with the connection.
    }
  }

  /** Standby: try the advisory lock every lockRetryMs until it is ours (or we are stopping). */
  private async acquire(): Promise<LeaderSession | undefined> {
    this.metrics.setRole('standby');
    let session: LeaderSession | undefined;
    let announced = false;
    while (!this.stopping) {
      try {
        if (!session || session.lost) {
          await session?.close();
          session = undefined;
          session = await LeaderSession.open({
            databaseUrl: this.cfg.databaseUrl,
            lockKey: relayLockKey(this.cfg.cluster),
            applicationName: `meshplane-relay-lock/${this.cfg.instanceId}`.slice(0, 63),
            checkMs: this.cfg.sessionCheckMs,
          });
        }
        if (await session.tryAcquire()) return session;
        if (!announced) this.log.info('standby: another relay holds the leader lock');
        announced = true;
      } catch (err) {
        this.logRepeated('warn', 'leader lock unavailable; retrying', errorFields(err));
      }
      await sleep(this.cfg.lockRetryMs, this.stopController.signal);
    }
    await session?.close();
    return undefined;
  }

  /** Publishes while this process holds the lock. Returns true when it chose to step down. */
  private async lead(session: LeaderSession): Promise<boolean> {
    const store = this.store!;
    const nc = this.nc!;
    const leading = AbortSignal.any([this.stopController.signal, session.lostSignal]);
    const onAbort = () => this.waker.wake();
    leading.addEventListener('abort', onAbort, { once: true });
    // The highest revision NOTIFY announced in this leadership: read up to it without a head query.
    let notified = 0;
    session.onNotify((revision) => {
      this.metrics.observeHead(revision);
      if (Number.isSafeInteger(revision) && revision > notified) notified = revision;
      this.waker.wake();
    });
    this.metrics.setRole('leader');
    this.log.info('leadership acquired');

    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc, { checkAPI: false });
    const publisher = new RevisionPublisher({
      store,
      js,
      jsm,
      cluster: this.cfg.cluster,
      stream: this.stream,
      batchSize: this.cfg.batchSize,
      publishWindow: this.cfg.publishWindow,
      log: this.log,
      metrics: this.metrics,
      maxPayload: () => nc.info?.max_payload,
    });
    // Federation: the exported view of each published revision, to this cluster's export stream.
    const exporter = new ExportPublisher({
      store,
      snapshots: new SnapshotRepository(createKysely(this.pool!)),
      js,
      jsm,
      cluster: this.cfg.cluster,
      log: this.log,
    });
    this.publisher = publisher;
    let provisioned = false;
    let failingSince: number | undefined;
    let backoff = 100;
    let conflicts = 0;
    try {
      while (!leading.aborted) {
        let pause: number | undefined;
        try {
          if (!provisioned) {
            await this.provision(js, jsm);
            provisioned = true;
          }
          await publisher.catchUp(() => leading.aborted, notified);
          await exporter.catchUp(
            () => leading.aborted,
            this.metrics.lastPublishedRevision,
            publisher.takePublished(),
          );
          if (this.metrics.blockedReason) this.log.info('stream and log agree again; publishing resumed');
          this.metrics.setBlocked(null);
          failingSince = undefined;
          backoff = 100;
          conflicts = 0;
        } catch (err) {
          if (leading.aborted) break;
          publisher.invalidate();
          exporter.invalidate();
          this.metrics.resynced();
          if (isWrongLastSequence(err)) {
            // Someone else (an ex-leader, a retry) published first: resume from the stream's tail.
            this.log.warn('stream moved under this relay; re-reading its last sequence', errorFields(err));
            pause = ++conflicts > 3 ? 250 : 0;
          } else if (err instanceof NatsReconnectedError) {
            // Not a failure: retry at once; if JetStream is still starting, the next error backs off.
            this.log.info('nats reconnected during a publish; re-reading the stream', {});
            provisioned = false;
            pause = 0;
          } else if (err instanceof RelayBlockedError) {
            this.metrics.setBlocked(err.message);
            this.logRepeated('error', 'refusing to publish', { reason: err.message });
            pause = Math.max(this.cfg.pollMs, 1_000);
          } else {
            failingSince ??= Date.now();
            provisioned = false;
            this.logRepeated('error', 'publishing failed; retrying', {
              ...errorFields(err),
              retryInMs: backoff,
            });
            pause = backoff;
            backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
            if (Date.now() - failingSince > this.cfg.stepDownAfterMs) {
              this.log.warn('stepping down after failing to publish', {
                failingForMs: Date.now() - failingSince,
              });
              return true;
            }
          }
        }
        // After an error, wait out the backoff (NOTIFY must not turn it into a hot loop);
        // otherwise sleep until a NOTIFY, the poll timer, or the end of leadership.
        if (pause !== undefined) await sleep(pause, leading);
        else await this.waker.wait(this.cfg.pollMs, leading);
      }
    } finally {
      this.publisher = undefined;
      leading.removeEventListener('abort', onAbort);
      session.onNotify(() => undefined);
    }
    if (session.lost && !this.stopping) {
      this.log.warn('leadership lost; publishing stopped', { reason: session.lostReason });
    }
    return false;
  }

  private async provision(
    js: ReturnType<typeof jetstream>,
    jsm: Awaited<ReturnType<typeof jetstreamManager>>,
  ): Promise<void> {
    const opts = this.cfg.streamMaxMsgs ? { maxMsgs: this.cfg.streamMaxMsgs } : {};
    const { action, info } = await provisionRevisionStream(jsm, this.cfg.cluster, opts);
    if (action !== 'unchanged') {
      this.log.info(`stream ${action}`, {
        stream: info.config.name,
        maxMsgs: info.config.max_msgs,
        lastRevision: info.state.last_seq,
      });
    }
    await provisionStatusBucket(js, this.cfg.cluster);
  }

  private async shutdown(): Promise<void> {
    this.metrics.setRole('stopped');
    const nc = this.nc;
    this.nc = undefined;
    if (nc) {
      // drain() flushes what is buffered; with the server gone it could wait long, so bound it.
      const timeout = new AbortController();
      const drained = await Promise.race([
        nc.drain().then(() => true),
        sleep(2_000, timeout.signal).then(() => false),
      ]).catch(() => false);
      timeout.abort();
      if (!drained) await nc.close().catch(() => undefined);
    }
    const pool = this.pool;
    this.store = undefined;
    this.pool = undefined;
    await pool?.end().catch(() => undefined);
    this.log.info('relay stopped', { lastPublishedRevision: this.metrics.lastPublishedRevision });
  }

  /** Logs `msg` once, then again only every REPEAT_LOG_MS while it keeps happening. */
  private logRepeated(level: 'warn' | 'error', msg: string, fields: Record<string, unknown>): void {
    const key = `${msg}|${String(fields.error ?? fields.reason ?? '')}`;
    const now = Date.now();
    const last = this.lastLogged.get(key);
    if (last !== undefined && now - last < REPEAT_LOG_MS) return;
    if (this.lastLogged.size > 100) this.lastLogged.clear();
    this.lastLogged.set(key, now);
    this.log[level](msg, fields);
  }
}
