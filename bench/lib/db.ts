import pg from 'pg';
import { createTestDatabase, DEFAULT_DATABASE_URL, type TestDatabase } from '../../test/harness/db';

export { DEFAULT_DATABASE_URL };

/**
 * Temporary databases for one benchmark run, created on the server of
 * DATABASE_URL and dropped at the end: on success, on failure, and on
 * SIGINT/SIGTERM (the handler drops them, then exits 130/143).
 */
export class TempDatabases {
  private readonly live = new Set<TestDatabase>();
  private readonly onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`\n${sig}: dropping the benchmark's databases\n`);
    void this.dropAll().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };

  constructor() {
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
  }

  async create(prefix: string): Promise<TestDatabase> {
    const db = await createTestDatabase(prefix);
    this.live.add(db);
    return db;
  }

  async drop(db: TestDatabase): Promise<void> {
    this.live.delete(db);
    await db.drop();
  }

  /** Drops every database still alive; errors are reported, not thrown. */
  async dropAll(): Promise<void> {
    const all = [...this.live];
    this.live.clear();
    await Promise.all(
      all.map((db) =>
        db.drop().catch((err) => process.stderr.write(`could not drop ${db.name}: ${String(err)}\n`)),
      ),
    );
    process.removeListener('SIGINT', this.onSignal);
    process.removeListener('SIGTERM', this.onSignal);
  }
}

/** `SHOW server_version` on the server of `url`. */
export async function serverVersion(url: string): Promise<string> {
  const c = benchClient(url);
  await c.connect();
  try {
    const r = await c.query<{ server_version: string }>('SHOW server_version');
    return r.rows[0]!.server_version;
  } finally {
    await c.end();
  }
}

/** Runs a few settings queries (one row each) and returns them by name. */
export async function showSettings(url: string, names: string[]): Promise<Record<string, string>> {
  const c = benchClient(url);
  await c.connect();
  try {
    const r = await c.query<{ name: string; setting: string; unit: string | null }>(
      'SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1) ORDER BY name',
      [names],
    );
    return Object.fromEntries(r.rows.map((x) => [x.name, x.unit ? `${x.setting} ${x.unit}` : x.setting]));
  } finally {
    await c.end();
  }
}

/** Forces a checkpoint so that one phase does not pay for the previous phase's dirty buffers. */
export async function checkpoint(url: string): Promise<void> {
  const c = benchClient(url);
  await c.connect();
  try {
    await c.query('CHECKPOINT');
  } finally {
    await c.end();
  }
}

/**
 * A pg pool / client for a benchmark: an 'error' listener is always attached,
 * so a server that goes away (the database dropped on Ctrl-C, a restart) fails
 * the queries in flight instead of crashing the process before it cleans up.
 */
export function benchPool(url: string, max: number, applicationName: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, application_name: applicationName });
  pool.on('error', () => undefined);
  return pool;
}

export function benchClient(url: string, applicationName = 'bench'): pg.Client {
  const c = new pg.Client({
    connectionString: url,
    application_name: applicationName,
    connectionTimeoutMillis: 5_000,
  });
  c.on('error', () => undefined);
  return c;
}
