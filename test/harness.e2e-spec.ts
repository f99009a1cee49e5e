import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import {
  adminUrl,
  createTestDatabase,
  freePort,
  PrivateNats,
  PrivatePostgres,
  readNatsInfo,
  sweepStaleHarnessDirs,
  TestDatabase,
  waitFor,
  withClient,
} from './harness';

/** True once `pid` no longer runs (a zombie left to a non-reaping init counts as gone). */
function pidGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

const waitGone = (pid: number) =>
  waitFor(() => pidGone(pid), { timeoutMs: 10_000, what: `pid ${pid} to exit` });

describe('waitFor', () => {
  it('returns the first truthy value and reports the last error on timeout', async () => {
    let n = 0;
    await expect(waitFor(() => (++n >= 3 ? n : undefined), { intervalMs: 1 })).resolves.toBe(3);
    await expect(
      waitFor(
        () => {
          throw new Error('boom');
        },
        { timeoutMs: 100, intervalMs: 10, what: 'nothing' },
      ),
    ).rejects.toThrow('timed out after 100ms waiting for nothing (last error: boom)');
    // A hung attempt must not hold the caller past the deadline.
    const t0 = Date.now();
    await expect(waitFor(() => new Promise<never>(() => undefined), { timeoutMs: 100 })).rejects.toThrow(
      'timed out after 100ms',
    );
    expect(Date.now() - t0).toBeLessThan(1_000);
  });

  it('gives up early when aborted', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('child died')), 20);
    await expect(waitFor(() => false, { timeoutMs: 10_000, signal: ac.signal })).rejects.toThrow(
      'child died',
    );
  });
});

describe('freePort', () => {
  it('returns a bindable loopback port', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    expect(port).toBeLessThan(65536);
  });
});

describe('createTestDatabase', () => {
  let db: TestDatabase | undefined;
  afterAll(async () => {
    await db?.drop();
  });

  const exists = (name: string, url: string) =>
    withClient(adminUrl(url), async (c) => {
      const r = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      return r.rowCount === 1;
    });

  it('creates a fresh database and drop() removes it, even with sessions open', async () => {
    db = await createTestDatabase('Harness-Test');
    expect(db.name).toMatch(new RegExp(`^harness_test_${process.pid}_[0-9a-f]{8}$`));
    expect(new URL(db.url).pathname).toBe(`/${db.name}`);
    expect(await exists(db.name, db.url)).toBe(true);

    // A session left open by a test must not block the drop.
    const open = new Client({ connectionString: db.url });
    open.on('error', () => undefined);
    await open.connect();
    await open.query('CREATE TABLE t (id int)');
    try {
      await db.drop();
    } finally {
      await open.end().catch(() => undefined);
    }
    expect(await exists(db.name, db.url)).toBe(false);
    await db.drop(); // idempotent
  });

  it('gives distinct names to concurrent callers', async () => {
    const dbs = await Promise.all([createTestDatabase(), createTestDatabase(), createTestDatabase()]);
    try {
      expect(new Set(dbs.map((d) => d.name)).size).toBe(3);
    } finally {
      await Promise.all(dbs.map((d) => d.drop()));
    }
  });
});

describe('PrivatePostgres', () => {
  let pg: PrivatePostgres | undefined;
  afterAll(async () => {
    await pg?.destroy();
  });

  it('starts, restarts, survives kill -9 and is destroyed without leftovers', async () => {
    const t0 = Date.now();
    pg = await PrivatePostgres.start();
    const startMs = Date.now() - t0;
    expect(startMs).toBeLessThan(15_000);
    expect(pg.url).toBe(`postgres://postgres@127.0.0.1:${pg.port}/postgres`);
    // As root, the cluster must belong to the postgres OS user, temp dir included.
    expect(fs.statSync(pg.dir).uid).toBe(fs.statSync(pg.dataDir).uid);

    const version = await pg.query<{ v: string }>('SELECT current_setting($1) AS v', ['server_version']);
    expect(version.rows[0].v).toMatch(/^15\./);
    const dbUrl = await pg.createDatabase('app');
    expect(dbUrl).toBe(pg.databaseUrl('app'));
    await withClient(dbUrl, (c) =>
      c.query('CREATE TABLE t (v text); INSERT INTO t VALUES ($$before-restart$$)'),
    );

    // restart: same port, data kept, a connection from before sees the server go away.
    const port = pg.port;
    const pid1 = pg.pid!;
    await pg.restart();
    expect(pg.port).toBe(port);
    expect(pg.pid).not.toBe(pid1);
    expect(pidGone(pid1)).toBe(true);
    await withClient(dbUrl, (c) => c.query("INSERT INTO t VALUES ('after-restart')"));

    // kill9: the postmaster and its backends die at once; committed rows survive crash recovery.
    const victim = new Client({ connectionString: dbUrl });
    const victimError = new Promise<Error>((resolve) => victim.on('error', resolve));
    await victim.connect();
    const backendPid = (await victim.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0].p;
    const pid2 = pg.pid!;
    await pg.kill9();
    expect(pg.running).toBe(false);
    await waitGone(pid2);
    await waitGone(backendPid);
    await expect(victimError).resolves.toBeInstanceOf(Error);
    await victim.end().catch(() => undefined);

    await pg.start();
    const rows = await pg.query<{ v: string }>('SELECT v FROM t ORDER BY v', [], 'app');
    expect(rows.rows.map((r) => r.v)).toEqual(['after-restart', 'before-restart']);

    // stop('immediate') also comes back.
    await pg.stop('immediate');
    await pg.start();
    expect((await pg.query('SELECT 1 AS one')).rows[0].one).toBe(1);

    const dir = pg.dir;
    const pid3 = pg.pid!;
    await pg.destroy();
    expect(fs.existsSync(dir)).toBe(false);
    await waitGone(pid3);
    await pg.destroy(); // idempotent
    pg = undefined;
  });

  it('reports the server log when it cannot start', async () => {
    await expect(PrivatePostgres.start({ settings: { shared_buffers: 'bogus' } })).rejects.toThrow(
      /PrivatePostgres failed to start[\s\S]*shared_buffers/,
    );
  });
});

describe('PrivateNats', () => {
  let nats: PrivateNats | undefined;
  let hub: PrivateNats | undefined;
  afterAll(async () => {
    await nats?.destroy();
    await hub?.destroy();
  });

  it('starts with JetStream, restarts on the same port, survives kill -9, is destroyed', async () => {
    nats = await PrivateNats.start();
    expect(nats.url).toBe(`nats://127.0.0.1:${nats.port}`);
    const info = await readNatsInfo(nats.port);
    expect(info.jetstream).toBe(true);
    expect(info.server_name).toBe(nats.name);

    const port = nats.port;
    const pid1 = nats.pid!;
    await nats.restart();
    expect(nats.port).toBe(port);
    expect(pidGone(pid1)).toBe(true);
    expect((await readNatsInfo(nats.port)).server_id).not.toBe(info.server_id);
    // JetStream keeps its state under the store dir we handed it.
    expect(fs.existsSync(path.join(nats.storeDir, 'jetstream'))).toBe(true);

    const pid2 = nats.pid!;
    await nats.kill9();
    await waitGone(pid2);
    await expect(readNatsInfo(nats.port, '127.0.0.1', 500)).rejects.toThrow();
    await nats.start();
    expect((await readNatsInfo(nats.port)).jetstream).toBe(true);

    const dir = nats.dir;
    const pid3 = nats.pid!;
    await nats.destroy();
    expect(fs.existsSync(dir)).toBe(false);
    await waitGone(pid3);
    nats = undefined;
  });

  it('accepts extra config text (JetStream domain)', async () => {
    hub = await PrivateNats.start({ config: 'jetstream { domain: hub }', name: 'hub-1' });
    const info = await readNatsInfo(hub.port);
    expect(info.server_name).toBe('hub-1');
    expect(info.jetstream).toBe(true);
    expect(info.domain).toBe('hub');
    expect(fs.readFileSync(hub.configFile!, 'utf8')).toContain(`listen: 127.0.0.1:${hub.port}`);
    expect(fs.existsSync(path.join(hub.storeDir, 'jetstream'))).toBe(true);
  });
});

describe('leftover processes', () => {
  // Runs the compiled harness in a separate node process, so we can kill that process the way a
  // crashed test run dies and check what it leaves behind.
  let build: string | undefined;
  const children: number[] = [];
  afterAll(() => {
    for (const pid of children) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (build) fs.rmSync(build, { recursive: true, force: true });
  });

  function compileHarness(): string {
    // swc is what jest uses here; transpile each harness file to CommonJS in a temp dir.
    const swc = require('@swc/core') as typeof import('@swc/core');
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'harness-build-'));
    const src = path.join(__dirname, 'harness');
    for (const f of fs.readdirSync(src).filter((x) => x.endsWith('.ts'))) {
      const { code } = swc.transformFileSync(path.join(src, f), {
        jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
        module: { type: 'commonjs' },
      });
      fs.writeFileSync(path.join(out, f.replace(/\.ts$/, '.js')), code);
    }
    return out;
  }

  async function runOrphan(
    mode: 'exit' | 'hang',
  ): Promise<{ child: ReturnType<typeof spawn>; pg: number; nats: number; dirs: string[] }> {
    build ??= compileHarness();
    const script = `
      const h = require(${JSON.stringify(build)});
      (async () => {
        const [pg, nats] = await Promise.all([h.PrivatePostgres.start(), h.PrivateNats.start()]);
        process.stdout.write(JSON.stringify({ pg: pg.pid, nats: nats.pid, dirs: [pg.dir, nats.dir] }) + '\\n');
        if (${JSON.stringify(mode)} === 'exit') process.exit(3);
        setInterval(() => undefined, 1000);
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const child = spawn(process.execPath, ['-e', script], {
      env: { ...process.env, NODE_PATH: path.resolve(__dirname, '..', 'node_modules') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child.pid!);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => {
      out += d;
    });
    child.stderr!.on('data', (d) => {
      err += d;
    });
    const line = await waitFor(() => out.split('\n').find((l) => l.startsWith('{')), {
      timeoutMs: 60_000,
      what: `orphan script output (stderr: ${err})`,
    });
    return { child, ...JSON.parse(line) };
  }

  it('the exit hook kills children and removes temp dirs when a test process exits', async () => {
    const r = await runOrphan('exit');
    await waitFor(() => r.child.exitCode !== null, { what: 'orphan script to exit' });
    await waitGone(r.pg);
    await waitGone(r.nats);
    for (const d of r.dirs) expect(fs.existsSync(d)).toBe(false);
  });

  it('a later sweep reaps what a SIGKILLed test process left', async () => {
    const r = await runOrphan('hang');
    r.child.kill('SIGKILL');
    await waitFor(() => r.child.exitCode !== null || r.child.signalCode !== null, { what: 'orphan to die' });
    // Nothing ran in the dead process, so its servers are still up...
    expect(pidGone(r.pg)).toBe(false);
    expect(pidGone(r.nats)).toBe(false);
    // ...until the next harness user sweeps.
    sweepStaleHarnessDirs();
    await waitGone(r.pg);
    await waitGone(r.nats);
    for (const d of r.dirs) expect(fs.existsSync(d)).toBe(false);
  });
});
