import { redactUrl } from '@meshplane/config';
import { advisoryLockKey, EventStore, LeaderSession } from '@meshplane/event-store';
import {
  connectNats,
  type FederationLinkStatus,
  importStreamName,
  provisionFederationBucket,
  provisionImportStream,
} from '@meshplane/messaging';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ImporterConfig } from './config';
import { createLogger, errorFields } from './logger';
import { PeerLink } from './peer-link';

export interface ImporterHandle {
  /** Link state of every peer while this instance leads; empty on a standby. */
  links(): FederationLinkStatus[];
  readonly leading: boolean;
  stop(): Promise<void>;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });

/**
 * Starts the federation importer in the background: one active instance per cluster (Postgres
 * advisory lock, the relay's LeaderSession), which imports every configured peer's exports into
 * this cluster's log. Dependencies that are down at start are waited for.
 */
export async function startImporter(config: ImporterConfig): Promise<ImporterHandle> {
  const log = createLogger(
    config.logLevel,
    { service: 'importer', cluster: config.cluster, instance: config.instanceId },
    config.logSink,
  );
  const stopper = new AbortController();
  let links: PeerLink[] = [];
  let leading = false;

  const lead = async (store: EventStore, nc: NatsConnection, session: LeaderSession) => {
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc, { checkAPI: false });
    const action = await provisionImportStream(jsm, config.cluster, config.peers);
    log.info('import stream ready', { stream: importStreamName(config.cluster), action });
    const kv = await provisionFederationBucket(js, config.cluster);
    links = [];
    for (const peer of config.peers) {
      const remote = await jetstreamManager(nc, {
        domain: peer.domain,
        timeout: config.probeTimeoutMs,
        checkAPI: false,
      });
      const link = new PeerLink({
        cluster: config.cluster,
        peer,
        store,
        nc,
        js,
        jsm,
        remote,
        kv,
        cacheTtlMs: config.cacheTtlMs,
        probeMs: config.probeMs,
        log,
      });
      links.push(link);
      await link.start();
    }
    leading = true;
    await new Promise<void>((resolve) => {
      const done = AbortSignal.any([stopper.signal, session.lostSignal]);
      if (done.aborted) resolve();
      else done.addEventListener('abort', () => resolve(), { once: true });
    });
    leading = false;
    if (session.lost && !stopper.signal.aborted) log.warn('leadership lost', { reason: session.lostReason });
    await Promise.all(links.map((l) => l.stop()));
  };

  const run = async () => {
    log.info('importer starting', {
      database: redactUrl(config.databaseUrl),
      nats: redactUrl(config.natsUrl),
      peers: config.peers.map((p) => `${p.name}@${p.domain}`),
      cacheTtlMs: config.cacheTtlMs,
    });
    let store: EventStore | undefined;
    let nc: NatsConnection | undefined;
    let backoff = 250;
    while (!stopper.signal.aborted) {
      let session: LeaderSession | undefined;
      try {
        store ??= await EventStore.open({
          databaseUrl: config.databaseUrl,
          cluster: config.cluster,
          poolSize: 4,
          applicationName: `meshplane-importer/${config.instanceId}`.slice(0, 63),
          onError: (err) => log.warn('database connection lost', errorFields(err)),
        });
        nc ??= await connectNats(config.natsUrl, {
          name: `meshplane-importer/${config.instanceId}`,
          signal: stopper.signal,
        });
        session = await LeaderSession.open({
          databaseUrl: config.databaseUrl,
          lockKey: advisoryLockKey('importer', config.cluster),
          applicationName: `meshplane-importer-lock/${config.instanceId}`.slice(0, 63),
          checkMs: 1_000,
          listen: false,
        });
        let announced = false;
        while (!stopper.signal.aborted && !session.lost && !(await session.tryAcquire())) {
          if (!announced) log.info('standby: another importer holds the lock');
          announced = true;
          await sleep(config.lockRetryMs, stopper.signal);
        }
        if (!stopper.signal.aborted && !session.lost) {
          log.info('leadership acquired');
          backoff = 250;
          await lead(store, nc, session);
        }
      } catch (err) {
        if (stopper.signal.aborted) break;
        log.error('importer loop failed; retrying', { ...errorFields(err), retryInMs: backoff });
        await Promise.all(links.map((l) => l.stop()));
        links = [];
        await sleep(backoff, stopper.signal);
        backoff = Math.min(backoff * 2, 5_000);
      } finally {
        await session?.close();
      }
    }
    await nc?.drain().catch(() => undefined);
    await store?.close().catch(() => undefined);
    log.info('importer stopped');
  };

  const loop = run();
  return {
    links: () => links.map((l) => l.status()),
    get leading() {
      return leading;
    },
    async stop() {
      stopper.abort();
      await loop;
    },
  };
}
