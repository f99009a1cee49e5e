import { createHash } from 'node:crypto';
import pg from 'pg';

/** The channel the event store NOTIFYs in every append transaction (payload: the revision). */
export const REVISIONS_CHANNEL = 'mesh_revisions';

/**
 * The advisory-lock key of a cluster's singleton `role` (relay, importer): the first 8 bytes of
 * SHA-256 over a fixed prefix, the role and the cluster, as a signed bigint (Postgres's key type).
 * Stable across versions and processes.
 */
export function advisoryLockKey(role: string, cluster: string): string {
  const digest = createHash('sha256').update(`meshplane:${role}:${cluster}`).digest();
  return BigInt.asIntN(64, digest.readBigUInt64BE(0)).toString();
}

export function relayLockKey(cluster: string): string {
  return advisoryLockKey('relay', cluster);
}

export interface LeaderSessionOptions {
  databaseUrl: string;
  lockKey: string;
  applicationName: string;
  /** Liveness query period once leader; a failed or slow check ends the session. */
  checkMs: number;
  /** Deadline of the connect and of each query on this session. */
  timeoutMs?: number;
  /** LISTEN for new revisions once leader (the relay's wake-up); default true. */
  listen?: boolean;
}

/**
 * One dedicated Postgres connection that holds a singleton's (the relay's, the importer's)
 * session-level advisory lock and LISTENs for new revisions. Leadership *is* this connection: Postgres releases the lock the
 * moment the session ends (crash, restart, network drop, kill -9 of the process), so the owner
 * must stop publishing as soon as `lost` fires. Wake-ups share its fate on purpose: a session
 * that cannot hear NOTIFY is also one that no longer leads.
 *
 * The lock is an optimisation, not the safety net: a partitioned ex-leader that has not noticed
 * yet can at worst publish a revision that the stream's expected-last-sequence guard and
 * Nats-Msg-Id dedupe already make harmless.
 */
export class LeaderSession {
  private ended = false;
  private holding = false;
  private checkTimer: NodeJS.Timeout | undefined;
  private readonly lostController = new AbortController();
  private notifyHandler: ((revision: number) => void) | undefined;

  private constructor(
    private readonly client: pg.Client,
    private readonly opts: LeaderSessionOptions,
  ) {
    const onGone = (reason: string) => (err?: Error) =>
      this.markLost(err ? `${reason}: ${err.message}` : reason);
    client.on('error', onGone('session error'));
    client.on('end', onGone('session ended'));
    client.on('notification', (msg) => {
      if (msg.channel !== REVISIONS_CHANNEL) return;
      const rev = Number(msg.payload);
      this.notifyHandler?.(Number.isSafeInteger(rev) ? rev : Number.NaN);
    });
  }

  static async open(opts: LeaderSessionOptions): Promise<LeaderSession> {
    const timeout = opts.timeoutMs ?? 5_000;
    const client = new pg.Client({
      connectionString: opts.databaseUrl,
      application_name: opts.applicationName,
      connectionTimeoutMillis: timeout,
      query_timeout: timeout,
      // Kernel keepalives notice a peer that vanished without a FIN, even between checks.
      keepAlive: true,
      keepAliveInitialDelayMillis: 5_000,
    });
    // Until the session object exists, a connect-time 'error' must not become uncaught.
    const swallow = () => undefined;
    client.on('error', swallow);
    try {
      await client.connect();
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    } finally {
      client.removeListener('error', swallow);
    }
    return new LeaderSession(client, opts);
  }

  /** Aborted when the session (and with it any lock) is gone. */
  get lostSignal(): AbortSignal {
    return this.lostController.signal;
  }

  get lost(): boolean {
    return this.lostController.signal.aborted;
  }

  get isLeader(): boolean {
    return this.holding && !this.lost;
  }

  /** One non-blocking attempt; true once this session holds the lock. */
  async tryAcquire(): Promise<boolean> {
    if (this.lost) return false;
    try {
      const r = await this.client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [
        this.opts.lockKey,
      ]);
      if (!r.rows[0]?.ok) return false;
      this.holding = true;
      if (this.opts.listen !== false) await this.client.query(`LISTEN ${REVISIONS_CHANNEL}`);
      this.startChecks();
      return true;
    } catch (err) {
      this.markLost(`lock query failed: ${(err as Error).message}`);
      throw err;
    }
  }

  onNotify(handler: (revision: number) => void): void {
    this.notifyHandler = handler;
  }

  /** Why the session was lost (for logs). */
  get lostReason(): string | undefined {
    const r = this.lostController.signal.reason;
    return r === undefined ? undefined : r instanceof Error ? r.message : String(r);
  }

  /** Ends the session; Postgres releases the lock and the LISTEN with it. Idempotent. */
  async close(): Promise<void> {
    this.markLost('closed');
    if (this.ended) return;
    this.ended = true;
    await this.client.end().catch(() => undefined);
  }

  private startChecks(): void {
    const tick = async () => {
      if (this.lost) return;
      try {
        await this.client.query('SELECT 1');
        if (!this.lost) this.checkTimer = setTimeout(tick, this.opts.checkMs);
      } catch (err) {
        // A check that fails or times out means the lock may be gone: end the session so that
        // the owner stops publishing, and so that a half-open socket is not kept around.
        this.markLost(`session check failed: ${(err as Error).message}`);
        this.ended = true;
        await this.client.end().catch(() => undefined);
      }
    };
    this.checkTimer = setTimeout(tick, this.opts.checkMs);
  }

  private markLost(reason: string): void {
    if (this.lost) return;
    clearTimeout(this.checkTimer);
    this.holding = false;
    this.lostController.abort(new Error(reason));
  }
}
