import { randomBytes } from 'node:crypto';
import { Client, ClientConfig } from 'pg';

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/meshplane';

export interface TestDatabase {
  url: string;
  name: string;
  /** Terminate its sessions and drop it. Idempotent. */
  drop(): Promise<void>;
}

/** Same server and credentials as `url`, database `postgres` (the maintenance db). */
export function adminUrl(url: string): string {
  const u = new URL(url);
  u.pathname = '/postgres';
  return u.toString();
}

/** `url` with its database replaced by `database`. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Bounded timeouts so a wedged server fails a test instead of hanging it. */
function clientConfig(url: string): ClientConfig {
  return { connectionString: url, connectionTimeoutMillis: 5_000, query_timeout: 60_000 };
}

/** Run `fn` with a short-lived client; the client is always closed. */
export async function withClient<T>(url: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client(clientConfig(url));
  // A server going away mid-session emits 'error'; unhandled it would crash the test process.
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function uniqueName(prefix: string): string {
  const clean = prefix.toLowerCase().replace(/[^a-z0-9_]/g, '_') || 'mp';
  const suffix = `_${process.pid}_${randomBytes(4).toString('hex')}`;
  // Postgres truncates identifiers to 63 bytes; trim the prefix, never the unique part.
  return clean.slice(0, 63 - suffix.length) + suffix;
}

/**
 * Create a fresh, empty database `<prefix>_<pid>_<random>` on the server of DATABASE_URL.
 * Migrations are the caller's job. Cloned from template0 so it is independent of whatever
 * others put in template1, and so concurrent sessions on template1 cannot make CREATE fail.
 */
export async function createTestDatabase(prefix = 'mp'): Promise<TestDatabase> {
  const base = process.env.DATABASE_URL || DEFAULT_DATABASE_URL;
  const admin = adminUrl(base);
  const name = uniqueName(prefix);
  await withClient(admin, (c) => c.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE template0`));
  return {
    name,
    url: withDatabase(base, name),
    drop: () => dropDatabase(admin, name),
  };
}

/** Terminate sessions on `name` and drop it if it exists (via the server at `admin`). */
export async function dropDatabase(admin: string, name: string): Promise<void> {
  await withClient(admin, async (c) => {
    await c.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [name],
    );
    // FORCE also covers sessions that connected between the terminate and the drop.
    await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
  });
}
