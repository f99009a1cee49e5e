import { type Migration, type MigrationProvider, Migrator } from 'kysely';
import pg from 'pg';
import { migrations } from '../../../migrations';
import { createKysely, createPool } from './connection';

class StaticMigrationProvider implements MigrationProvider {
  constructor(private readonly all: Record<string, Migration>) {}
  async getMigrations(): Promise<Record<string, Migration>> {
    return this.all;
  }
}

/** Creates the database named in `databaseUrl` when it does not exist yet. */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!name) throw new Error(`DATABASE_URL names no database: ${databaseUrl}`);
  url.pathname = '/postgres';
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount) return false;
    try {
      await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
    } catch (err) {
      // Another process created it between our check and our CREATE.
      if ((err as { code?: string }).code !== '42P04') throw err;
      return false;
    }
    return true;
  } finally {
    await client.end();
  }
}

export interface MigrateResult {
  applied: string[];
}

/** Runs every pending migration; forward-only, so there is no "down". */
export async function migrateToLatest(databaseUrl: string): Promise<MigrateResult> {
  const pool = createPool(databaseUrl, { max: 1, applicationName: 'meshplane-migrate' });
  const db = createKysely<unknown>(pool);
  try {
    const migrator = new Migrator({ db, provider: new StaticMigrationProvider(migrations) });
    const { error, results } = await migrator.migrateToLatest();
    const failed = results?.find((r) => r.status === 'Error');
    if (error || failed) {
      const cause = error instanceof Error ? error.message : String(error ?? '');
      throw new Error(`migration ${failed?.migrationName ?? '?'} failed: ${cause}`);
    }
    return { applied: (results ?? []).map((r) => r.migrationName) };
  } finally {
    await db.destroy();
  }
}
