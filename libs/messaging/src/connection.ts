import { connect, type NatsConnection } from '@nats-io/transport-node';

export interface ConnectNatsOptions {
  /** Client name shown by the server's monitoring (`meshplane-relay`, `meshplane-agent/node-a`). */
  name: string;
  /**
   * How long to keep trying the first connection before giving up; default 30 s. Once connected,
   * the client reconnects forever: a control-plane process must outlive any NATS restart.
   */
  firstConnectTimeoutMs?: number;
  /** Pause between reconnect attempts (plus up to 25% jitter); default 500 ms. */
  reconnectWaitMs?: number;
  /** Handshake deadline of one attempt; default 5 s. */
  attemptTimeoutMs?: number;
  /**
   * Client pings detect a half-open TCP connection (server host gone without a FIN); with the
   * defaults (5 s, 3 outstanding) a dead server is noticed within ~20 s instead of 2 minutes.
   */
  pingIntervalMs?: number;
  maxPingOut?: number;
  /** Abort the first-connect loop (for a process that is asked to stop while waiting). */
  signal?: AbortSignal;
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/**
 * Connects to NATS (`url` may list several servers, comma-separated). The first connection is
 * retried with capped backoff until `firstConnectTimeoutMs`; after that, the client never gives
 * up reconnecting and waits a bounded `reconnectWaitMs` between attempts.
 */
export async function connectNats(url: string, opts: ConnectNatsOptions): Promise<NatsConnection> {
  const servers = url
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (servers.length === 0) throw new Error('connectNats: no server URL given');
  const wait = opts.reconnectWaitMs ?? 500;
  const deadline = Date.now() + (opts.firstConnectTimeoutMs ?? 30_000);
  let backoff = 100;
  for (let attempt = 1; ; attempt++) {
    opts.signal?.throwIfAborted();
    try {
      return await connect({
        servers,
        name: opts.name,
        maxReconnectAttempts: -1,
        reconnectTimeWait: wait,
        reconnectJitter: Math.ceil(wait / 4),
        timeout: opts.attemptTimeoutMs ?? 5_000,
        pingInterval: opts.pingIntervalMs ?? 5_000,
        maxPingOut: opts.maxPingOut ?? 3,
        // Otherwise every request (each JetStream publish and KV put) builds an Error with a
        // captured stack up front, in case it fails: a measurable share of an agent's CPU per
        // status write. Failures are still errors with the server's reason; they lose only the
        // caller's stack, which our logs do not print.
        noAsyncTraces: true,
      });
    } catch (err) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new Error(`could not connect to NATS at ${servers.join(',')} (${attempt} attempts)`, {
          cause: err,
        });
      }
      await sleep(Math.min(backoff, remaining), opts.signal);
      backoff = Math.min(backoff * 2, 2_000);
    }
  }
}
