import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';

/**
 * Postgres returns int8 as strings; revisions and versions stay far below 2^53,
 * so they are parsed as numbers, on this pool only (no global type mutation).
 */
const INT8_OID = 20;
const typeParsers = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID && format !== 'binary') return (v: string) => Number(v);
    // biome-ignore lint/suspicious/noExplicitAny: pg's overloads are not expressible here
    return (pg.types.getTypeParser as any)(oid, format);
  },
};

export interface PoolOptions {
  max?: number;
  applicationName?: string;
  onError?: (err: Error) => void;
}

export function createPool(databaseUrl: string, opts: PoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: opts.max ?? 10,
    application_name: opts.applicationName ?? 'meshplane',
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
    types: typeParsers,
  });
  // An idle client whose server went away emits 'error'; without a listener
  // that would crash the process. The pool drops the client and reconnects.
  pool.on('error', (err) => opts.onError?.(err));
  // pg-pool listens for errors only on idle clients; a checked-out client whose server
  // restarts emits 'error' too, and unhandled that kills the process. The query in
  // flight still fails with the error, which is where callers handle it.
  pool.on('connect', (client) => client.on('error', (err) => opts.onError?.(err)));
  return pool;
}

export function createKysely<DB>(pool: pg.Pool): Kysely<DB> {
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
}

/** Errors that mean "the connection or server failed", not "the statement was wrong". */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  if (!e) return false;
  if (typeof e.code === 'string') {
    if (
      [
        'ECONNREFUSED',
        'ECONNRESET',
        'EPIPE',
        'ETIMEDOUT',
        '57P01',
        '57P02',
        '57P03',
        '08000',
        '08003',
        '08006',
      ].includes(e.code)
    )
      return true;
  }
  const msg = e.message ?? '';
  return /Connection terminated|connection is closed|Client has encountered a connection error|timeout exceeded when trying to connect/i.test(
    msg,
  );
}
