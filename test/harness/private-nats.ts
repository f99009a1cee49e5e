import { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { freePort } from './ports';
import {
  createHarnessDir,
  isAlive,
  kill9Child,
  recordChildPid,
  removeDirAtExit,
  spawnTracked,
  sweepStaleHarnessDirs,
  terminate,
} from './processes';
import { awaitReady, destroyServer, logOffset, startOnFreePort } from './server-start';

const NATS_SERVER = process.env.NATS_SERVER_BIN || '/usr/sbin/nats-server';

export interface PrivateNatsOptions {
  /** Fixed client port; by default a free one is picked (and re-picked if the bind races). */
  port?: number;
  /** Extra nats-server config text (jetstream domain, leafnodes, accounts, ...). */
  config?: string;
  /** server_name; defaults to one derived from the temp dir (unique, stable across restarts). */
  name?: string;
  /** Readiness deadline for each start; default 20 s. */
  startTimeoutMs?: number;
}

/** The parsed INFO line a NATS server sends first on every client connection. */
export interface NatsServerInfo {
  server_id: string;
  server_name: string;
  version: string;
  port: number;
  jetstream?: boolean;
  [key: string]: unknown;
}

/** Connect to host:port and read the greeting line; resolves only if it is a NATS `INFO {...}`. */
export function readNatsInfo(port: number, host = '127.0.0.1', timeoutMs = 2_000): Promise<NatsServerInfo> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    let buf = '';
    const done = (err: Error | undefined, info?: NatsServerInfo): void => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(info!);
    };
    const timer = setTimeout(
      () => done(new Error(`no INFO from ${host}:${port} within ${timeoutMs}ms`)),
      timeoutMs,
    );
    sock.setEncoding('utf8');
    sock.on('error', (err) => done(err));
    sock.on('close', () => done(new Error(`${host}:${port} closed before sending INFO`)));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const eol = buf.indexOf('\r\n');
      if (eol < 0) return;
      const line = buf.slice(0, eol);
      if (!line.startsWith('INFO ')) {
        done(new Error(`unexpected greeting from ${host}:${port}: ${line.slice(0, 200)}`));
        return;
      }
      try {
        done(undefined, JSON.parse(line.slice(5)) as NatsServerInfo);
      } catch (err) {
        done(err as Error);
      }
    });
  });
}

/** Whether the JetStream API of the server on `port` answers a request within a second. */
async function jetStreamAnswers(port: number): Promise<boolean> {
  const nc = await connect({ servers: `127.0.0.1:${port}`, reconnect: false, timeout: 1_000 });
  try {
    await nc.request('$JS.API.INFO', undefined, { timeout: 1_000 });
    return true;
  } catch {
    return false;
  } finally {
    await nc.close().catch(() => undefined);
  }
}

/**
 * A throwaway nats-server with JetStream, owned by one test: own port, store dir and process, so
 * fault tests can stop, crash and restart it without touching the shared server.
 */
export class PrivateNats {
  readonly dir: string;
  readonly storeDir: string;
  readonly logFile: string;
  readonly configFile: string | undefined;
  readonly name: string;
  private _port: number;
  private child: ChildProcess | undefined;
  private readonly config: string | undefined;
  private readonly startTimeoutMs: number;

  private constructor(dir: string, port: number, opts: PrivateNatsOptions) {
    this.dir = dir;
    this.storeDir = path.join(dir, 'js');
    this.logFile = path.join(dir, 'nats.log');
    this.config = opts.config;
    this.configFile = opts.config === undefined ? undefined : path.join(dir, 'nats.conf');
    this.name = opts.name ?? path.basename(dir);
    this._port = port;
    this.startTimeoutMs = opts.startTimeoutMs ?? 20_000;
  }

  static async start(opts: PrivateNatsOptions = {}): Promise<PrivateNats> {
    sweepStaleHarnessDirs();
    const nats = new PrivateNats(createHarnessDir('nats'), opts.port ?? (await freePort()), opts);
    try {
      const server = {
        start: () => nats.start(),
        repick: (port: number) => {
          nats._port = port;
        },
      };
      await startOnFreePort(server, opts.port, /address already in use|error listening/i);
      return nats;
    } catch (err) {
      await nats.destroy().catch(() => undefined);
      throw err;
    }
  }

  get port(): number {
    return this._port;
  }

  get url(): string {
    return `nats://127.0.0.1:${this._port}`;
  }

  get pid(): number | undefined {
    return this.child && isAlive(this.child) ? this.child.pid : undefined;
  }

  get running(): boolean {
    return this.child !== undefined && isAlive(this.child);
  }

  /** Start on the same port and store dir; resolves once the client port greets with INFO. */
  async start(): Promise<void> {
    if (this.running) return;
    // Command-line flags override the config file in nats-server, so listen/JetStream/store dir
    // are always ours even if the extra config text sets them too.
    const args = ['-a', '127.0.0.1', '-p', String(this._port), '-js', '-sd', this.storeDir, '-n', this.name];
    if (this.configFile !== undefined) {
      fs.writeFileSync(this.configFile, this.renderConfig());
      args.push('-c', this.configFile);
    }
    const logFrom = logOffset(this.logFile);
    const fd = fs.openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawnTracked(NATS_SERVER, args, { cwd: this.dir, stdio: ['ignore', fd, fd] });
    } finally {
      fs.closeSync(fd);
    }
    this.child = child;
    recordChildPid(this.dir, child.pid);
    removeDirAtExit(this.dir);

    await awaitReady(child, {
      probe: async () => {
        const info = await readNatsInfo(this._port, '127.0.0.1', 1_000);
        // The INFO could come from a stranger who grabbed the port; check it is ours.
        if (info.server_name !== this.name) throw new Error(`port taken by server ${info.server_name}`);
        if (info.jetstream !== true) return undefined;
        // INFO advertises JetStream before its API answers: on a loaded machine the first JS
        // request of a test (stream provisioning, account info) then timed out after 5 s.
        return (await jetStreamAnswers(this._port)) ? info : undefined;
      },
      label: 'nats-server',
      owner: 'PrivateNats',
      port: this._port,
      timeoutMs: this.startTimeoutMs,
      intervalMs: 25,
      logFile: this.logFile,
      logFrom,
    });
  }

  /** Graceful stop (SIGTERM), escalating to SIGKILL after 15 s. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || !isAlive(child)) return;
    await terminate(child, { signal: 'SIGTERM', timeoutMs: 15_000 });
  }

  /** SIGKILL the server: no flush, clients see the socket drop; start() recovers the store. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (!child || !isAlive(child)) return;
    await kill9Child(child);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Stop if running and remove the temp dir. Idempotent. */
  async destroy(): Promise<void> {
    await destroyServer(this.dir, this.child, () => this.stop());
  }

  private renderConfig(): string {
    const extra = this.config ?? '';
    // A second top-level `jetstream` block would replace ours, so only add it when the caller
    // has none; the -sd flag still pins the store dir in that case.
    const hasJetStream = /^\s*jetstream\s*[:={]/m.test(extra);
    return [
      '# written by test/harness/private-nats.ts',
      `listen: 127.0.0.1:${this._port}`,
      `server_name: ${JSON.stringify(this.name)}`,
      hasJetStream ? '' : `jetstream { store_dir: ${JSON.stringify(this.storeDir)} }`,
      extra,
      '',
    ].join('\n');
  }
}
