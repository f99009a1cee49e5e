import { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Client, QueryResult, QueryResultRow } from 'pg';
import { quoteIdent, withClient } from './db';
import { freePort } from './ports';
import {
  createHarnessDir,
  isAlive,
  kill9Child,
  logTail,
  recordChildPid,
  removeDirAtExit,
  spawnTracked,
  sweepStaleHarnessDirs,
  terminate,
  waitForExit,
} from './processes';
import { awaitReady, destroyServer, logOffset, startOnFreePort } from './server-start';

const PG_BIN = process.env.PG_BIN || '/usr/lib/postgresql/15/bin';

export interface PrivatePostgresOptions {
  /** Fixed port; by default a free one is picked (and re-picked if the bind races). */
  port?: number;
  /** Extra server settings passed as `-c key=value` on every start. */
  settings?: Record<string, string | number | boolean>;
  /** Readiness deadline for each start; default 30 s. */
  startTimeoutMs?: number;
}

/** uid/gid of the `postgres` OS user when we are root (initdb/postgres refuse to run as root). */
function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('PrivatePostgres: running as root but there is no `postgres` OS user');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * A throwaway PostgreSQL cluster owned by one test: its own data dir, port and process, so fault
 * tests can stop, crash and restart it without touching the shared server.
 */
export class PrivatePostgres {
  readonly dir: string;
  readonly dataDir: string;
  readonly logFile: string;
  private _port: number;
  private child: ChildProcess | undefined;
  private readonly user = postgresUser();
  private readonly settings: Record<string, string | number | boolean>;
  private readonly startTimeoutMs: number;

  private constructor(dir: string, port: number, opts: PrivatePostgresOptions) {
    this.dir = dir;
    this.dataDir = path.join(dir, 'data');
    this.logFile = path.join(dir, 'postgres.log');
    this._port = port;
    this.settings = opts.settings ?? {};
    this.startTimeoutMs = opts.startTimeoutMs ?? 30_000;
  }

  static async start(opts: PrivatePostgresOptions = {}): Promise<PrivatePostgres> {
    sweepStaleHarnessDirs();
    const dir = createHarnessDir('pg');
    const pg = new PrivatePostgres(dir, opts.port ?? (await freePort()), opts);
    try {
      await pg.initdb();
      const server = {
        start: () => pg.start(),
        repick: (port: number) => {
          pg._port = port;
        },
      };
      await startOnFreePort(
        server,
        opts.port,
        /could not bind|Address already in use|could not create any TCP/i,
      );
      return pg;
    } catch (err) {
      await pg.destroy().catch(() => undefined);
      throw err;
    }
  }

  get port(): number {
    return this._port;
  }

  get url(): string {
    return this.databaseUrl('postgres');
  }

  /** Postmaster pid while running. */
  get pid(): number | undefined {
    return this.child && isAlive(this.child) ? this.child.pid : undefined;
  }

  get running(): boolean {
    return this.child !== undefined && isAlive(this.child);
  }

  databaseUrl(db: string): string {
    return `postgres://postgres@127.0.0.1:${this._port}/${encodeURIComponent(db)}`;
  }

  async createDatabase(name: string): Promise<string> {
    await withClient(this.url, (c) => c.query(`CREATE DATABASE ${quoteIdent(name)}`));
    return this.databaseUrl(name);
  }

  /** One-off query on the `postgres` database (or `db`), on a fresh connection. */
  query<R extends QueryResultRow = QueryResultRow>(
    sql: string,
    params: unknown[] = [],
    db = 'postgres',
  ): Promise<QueryResult<R>> {
    return withClient(this.databaseUrl(db), (c) => c.query<R>(sql, params));
  }

  /** Start the postmaster on the same port and data dir; resolves once it accepts queries. */
  async start(): Promise<void> {
    if (this.running) return;
    const logFrom = logOffset(this.logFile);
    const settings: Record<string, string | number | boolean> = {
      listen_addresses: '127.0.0.1',
      unix_socket_directories: this.dir,
      // Only an OS crash can lose data with these off; a kill9() of the server cannot, so crash
      // tests keep real commit semantics (synchronous_commit stays on for that reason).
      fsync: 'off',
      full_page_writes: 'off',
      shared_buffers: '16MB',
      max_connections: 100,
      ...this.settings,
    };
    const args = ['-D', this.dataDir, '-p', String(this._port)];
    for (const [k, v] of Object.entries(settings)) args.push('-c', `${k}=${v}`);
    const child = this.spawnAsPostgres('postgres', args);
    this.child = child;
    recordChildPid(this.dir, child.pid);
    removeDirAtExit(this.dir);

    await awaitReady(child, {
      probe: () => this.ping(),
      label: 'postgres',
      owner: 'PrivatePostgres',
      port: this._port,
      timeoutMs: this.startTimeoutMs,
      intervalMs: 50,
      logFile: this.logFile,
      logFrom,
    });
  }

  /** Shut down: 'fast' (SIGINT, clean) or 'immediate' (SIGQUIT, crash recovery on next start). */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    const child = this.child;
    if (!child || !isAlive(child)) return;
    await terminate(child, { signal: mode === 'fast' ? 'SIGINT' : 'SIGQUIT', timeoutMs: 30_000 });
  }

  async restart(): Promise<void> {
    await this.stop('fast');
    await this.start();
  }

  /**
   * SIGKILL the postmaster and its whole process group (backends included), like a host crash:
   * open connections die at once and the next start() runs crash recovery.
   */
  async kill9(): Promise<void> {
    const child = this.child;
    if (!child || !isAlive(child)) return;
    await kill9Child(child);
  }

  /** Stop if running and remove the temp dir. Idempotent. */
  async destroy(): Promise<void> {
    await destroyServer(this.dir, this.child, () => this.stop('immediate'));
  }

  private async initdb(): Promise<void> {
    if (this.user) fs.chownSync(this.dir, this.user.uid, this.user.gid);
    const log = path.join(this.dir, 'initdb.log');
    const child = this.spawnAsPostgres(
      'initdb',
      ['-D', this.dataDir, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '-N'],
      log,
    );
    const failed = new Promise<never>((_, reject) => child.once('error', reject));
    const res = await Promise.race([waitForExit(child, 60_000), failed]).catch(async (err) => {
      await kill9Child(child).catch(() => undefined);
      throw err;
    });
    if (res.code !== 0) {
      throw new Error(`initdb failed (code ${res.code}, signal ${res.signal}):\n${logTail(log)}`);
    }
  }

  private spawnAsPostgres(bin: string, args: string[], logFile = this.logFile): ChildProcess {
    const fd = fs.openSync(logFile, 'a');
    try {
      return spawnTracked(path.join(PG_BIN, bin), args, {
        cwd: this.dir,
        stdio: ['ignore', fd, fd],
        env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
        ...(this.user ?? {}),
      });
    } finally {
      // The child holds its own copy of the descriptor.
      fs.closeSync(fd);
    }
  }

  private async ping(): Promise<boolean> {
    const client = new Client({ connectionString: this.url, connectionTimeoutMillis: 1_000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('SELECT 1');
      return true;
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}
