import {
  connectNats,
  type NodeStatus,
  openStatusBucket,
  readNodeStatuses,
  revisionPublishedAt,
  statusBucket,
  streamInfoOrUndefined,
} from '@meshplane/messaging';
import {
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { UnavailableError } from '../common/errors';
import { API_CONFIG, ApiLogger } from '../common/logger';
import { type ApiConfig, DEFAULT_NATS_URL } from '../config';

/** One connect attempt per request while NATS is down: loopback refusals are instant, a black hole is not. */
const CONNECT_ATTEMPT_MS = 2_000;
/** JetStream API calls (KV reads, stream info); shorter than meshctl's 30 s so a wedged server answers 503. */
const JETSTREAM_TIMEOUT_MS = 3_000;
const STREAM_NOT_FOUND = 10059;

/** `nats://user:secret@host` and token URLs (`nats://token@host`) lose their credentials. */
export function redactNatsUrls(urls: string): string {
  return urls
    .split(',')
    .map((one) => {
      try {
        const u = new URL(one.trim());
        if (u.username) u.username = '***';
        if (u.password) u.password = '***';
        return u.toString();
      } catch {
        return '(unparseable url)';
      }
    })
    .join(',');
}

export interface Handles {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

/**
 * The API's window on NATS: node status (KV) and revision publish times (stream). Connects on first
 * use, not at start-up, so that the API, whose job is the log in Postgres, starts and serves without
 * NATS; only the routes that read from NATS answer 503 while it is away. Once connected the client
 * reconnects forever (connectNats); while it is disconnected, calls fail at once instead of waiting
 * out a request timeout.
 */
@Injectable()
export class NodeStatusSource implements OnApplicationShutdown {
  private readonly url: string;
  /** For messages and logs: error bodies go to every viewer, so no credentials in them. */
  private readonly shownUrl: string;
  private handles: Handles | undefined;
  private connecting: Promise<Handles> | undefined;
  private connected = false;
  private stopping = false;

  constructor(
    @Inject(API_CONFIG) private readonly config: ApiConfig,
    private readonly logger: ApiLogger,
  ) {
    this.url = config.natsUrl ?? DEFAULT_NATS_URL;
    this.shownUrl = redactNatsUrls(this.url);
  }

  /** Every node's latest status, by node name; [] when no agent or relay has created the bucket yet. */
  readStatuses(): Promise<NodeStatus[]> {
    return this.use('read node status', async ({ js, jsm }) => {
      const bucket = statusBucket(this.config.cluster);
      // Opening a KV does not check that it exists; reading a missing one fails with a vague error.
      if (!(await streamInfoOrUndefined(jsm, `KV_${bucket}`))) return [];
      const kv = await openStatusBucket(js, this.config.cluster);
      return readNodeStatuses(kv, (key, err) =>
        this.logger.log('warn', 'skipping an undecodable node status', { bucket, key, error: err.message }),
      );
    });
  }

  /** When the relay published `revision` (the JetStream timestamp); null if not (or no longer) in the stream. */
  publishedAt(revision: number): Promise<Date | null> {
    return this.use('read the revision stream', async ({ jsm }) => {
      try {
        return (await revisionPublishedAt(jsm, this.config.cluster, revision)) ?? null;
      } catch (err) {
        if (err instanceof JetStreamApiError && err.code === STREAM_NOT_FOUND) return null;
        throw err;
      }
    });
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
    const h = this.handles ?? (await this.connecting?.catch(() => undefined));
    this.handles = undefined;
    await h?.nc.close().catch(() => undefined);
  }

  /** Runs `fn` with live handles; every NATS failure becomes a 503 that says what was unreachable. */
  async use<T>(what: string, fn: (h: Handles) => Promise<T>): Promise<T> {
    const h = await this.handlesOrUnavailable();
    try {
      return await fn(h);
    } catch (err) {
      throw this.unavailable(`could not ${what} from NATS at ${this.shownUrl}: ${(err as Error).message}`);
    }
  }

  private async handlesOrUnavailable(): Promise<Handles> {
    if (this.stopping) throw this.unavailable('the API is shutting down');
    const h = this.handles;
    if (h && !h.nc.isClosed()) {
      if (!this.connected) {
        throw this.unavailable(`NATS at ${this.shownUrl} is unreachable (reconnecting)`);
      }
      return h;
    }
    // Concurrent requests share one attempt.
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    try {
      return await this.connecting;
    } catch (err) {
      const cause = (err as Error & { cause?: Error }).cause?.message ?? (err as Error).message;
      throw this.unavailable(`NATS at ${this.shownUrl} is unreachable (${cause})`);
    }
  }

  private async connect(): Promise<Handles> {
    // One attempt (firstConnectTimeoutMs 0): the caller is an HTTP request, and the next request
    // tries again; there is no point holding this one for a server that is down.
    const nc = await connectNats(this.url, {
      name: 'meshplane-api',
      firstConnectTimeoutMs: 0,
      attemptTimeoutMs: CONNECT_ATTEMPT_MS,
    });
    if (this.stopping) {
      await nc.close().catch(() => undefined);
      throw new Error('the API is shutting down');
    }
    const handles: Handles = {
      nc,
      js: jetstream(nc, { timeout: JETSTREAM_TIMEOUT_MS }),
      jsm: await jetstreamManager(nc, { checkAPI: false, timeout: JETSTREAM_TIMEOUT_MS }),
    };
    this.handles = handles;
    this.connected = true;
    this.logger.log('info', 'nats connected', { nats: this.shownUrl });
    void this.watch(nc);
    return handles;
  }

  /** Tracks connectivity so that calls during an outage fail fast (503) instead of timing out. */
  private async watch(nc: NatsConnection): Promise<void> {
    try {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') {
          this.connected = false;
          this.logger.log('warn', 'nats disconnected; reconnecting', { nats: this.shownUrl });
        } else if (s.type === 'reconnect') {
          this.connected = true;
          this.logger.log('info', 'nats reconnected', { nats: this.shownUrl });
        }
      }
    } catch {
      // The iterator ends with the connection.
    }
  }

  private unavailable(reason: string): UnavailableError {
    return new UnavailableError(
      `node status is unavailable: ${reason}; the rest of the API is not affected, retry later`,
      [{ path: 'nats', message: reason }],
    );
  }
}
