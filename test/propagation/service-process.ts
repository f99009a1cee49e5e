import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { kill9Child, onLines, sleep, spawnTracked, terminate, waitFor } from '../harness';

/*
 * The services of the propagation suites as REAL child processes: the built dist/ when it is at
 * least as new as its sources, else the sources through test/relay/run-ts.cjs (as
 * test/relay/helpers.ts does for the relay).
 */

export const ROOT = path.resolve(__dirname, '..', '..');
export const SHARED_NATS_URL = process.env.NATS_URL || 'nats://127.0.0.1:4222';
export const TOKEN = 'propagation-bootstrap-token-0123456789';

export type ServiceKind = 'agent' | 'relay';

// What each service's entry point loads from the workspace (relay: the event store too).
const SOURCE_DIRS: Record<ServiceKind, string[]> = {
  agent: [
    'services/agent/src',
    'libs/dataplane/src',
    'libs/messaging/src',
    'libs/domain/src',
    'libs/config/src',
  ],
  relay: [
    'services/relay/src',
    'libs/event-store/src',
    'libs/messaging/src',
    'libs/domain/src',
    'libs/config/src',
  ],
};

function newestTsMtime(dir: string): number {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestTsMtime(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.spec.ts'))
      newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * The built service (`npm run build`) when dist/ is at least as new as every source it loads;
 * otherwise the sources through test/relay/run-ts.cjs, so a stale build never tests old code.
 */
export function serviceCommand(
  kind: ServiceKind,
  forceSource = false,
): { args: string[]; from: 'dist' | 'source' } {
  const main = path.join(ROOT, 'dist', 'services', kind, 'src', 'main.js');
  const newest = Math.max(...SOURCE_DIRS[kind].map((d) => newestTsMtime(path.join(ROOT, d))));
  if (!forceSource && fs.existsSync(main) && fs.statSync(main).mtimeMs >= newest)
    return { args: [main], from: 'dist' };
  return { args: [path.join(ROOT, 'test/relay/run-ts.cjs'), `services/${kind}/src/main.ts`], from: 'source' };
}

export type LogLine = Record<string, unknown> & { msg?: string; level?: string; incarnation: number };

/**
 * A service as a child process (own process group, tracked by the harness so a crashed run
 * leaves nothing behind). It can be killed and started again (a new incarnation) with the same
 * environment; JSON log lines of every incarnation are kept, tagged with it.
 */
export class ServiceProcess {
  readonly logs: LogLine[] = [];
  incarnation = 0;
  child: ChildProcess | undefined;
  from: 'dist' | 'source' | undefined;
  stderr = '';
  /** Set when a child exits without the test asking for it. */
  crashed: string | undefined;
  private expectExit = false;

  constructor(
    readonly kind: ServiceKind,
    readonly name: string,
    readonly env: Record<string, string>,
  ) {}

  get alive(): boolean {
    const c = this.child;
    return c !== undefined && c.exitCode === null && c.signalCode === null;
  }

  get pid(): number | undefined {
    return this.alive ? this.child!.pid : undefined;
  }

  /**
   * Spawns the service and resolves once it has written its first log line (its modules are
   * loaded). Other engineers rebuild dist/ while tests run, and a process started between tsc's
   * emit and tsc-alias's rewrite cannot load its modules: such a start-up death is retried, the
   * last attempt from the sources.
   */
  async start(attempts = 4): Promise<void> {
    if (this.alive) throw new Error(`${this.kind} ${this.name} is already running`);
    for (let attempt = 1; ; attempt++) {
      const incarnation = ++this.incarnation;
      const child = this.spawn(incarnation, attempt === attempts);
      try {
        await waitFor(
          () => {
            if (child.exitCode !== null || child.signalCode !== null)
              throw Object.assign(new Error(`exited (code ${child.exitCode})`), { exited: true });
            return this.logs.some((l) => l.incarnation === incarnation && l.time !== undefined);
          },
          { timeoutMs: 30_000, intervalMs: 25, what: `${this.kind} ${this.name} to start` },
        );
        return;
      } catch (err) {
        const exited = child.exitCode !== null || child.signalCode !== null;
        if (!exited || attempt >= attempts) {
          await this.kill9();
          throw new Error(`${(err as Error).message}\n${this.describe()}`, { cause: err });
        }
        // Not a crash of the service under test: it never got to run. Try again.
        this.logs.push({ msg: `start-up attempt ${attempt} died: ${this.stderr.slice(-500)}`, incarnation });
        await sleep(500);
      }
    }
  }

  private spawn(incarnation: number, forceSource: boolean): ChildProcess {
    const { args, from } = serviceCommand(this.kind, forceSource);
    this.from = from;
    this.expectExit = false;
    this.crashed = undefined;
    this.stderr = '';
    // Only what the test says: no MESH_* of the environment running the tests leaks in.
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MESH_')));
    const child = spawnTracked(process.execPath, args, {
      cwd: ROOT,
      env: { ...base, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    onLines(child.stdout!, (json, line) =>
      this.logs.push(json ? { ...json, incarnation } : { msg: line, incarnation }),
    );
    child.stderr!.setEncoding('utf8').on('data', (c: string) => {
      this.stderr += c;
    });
    child.once('exit', (code, signal) => {
      if (!this.expectExit && this.child === child)
        this.crashed = `${this.kind} ${this.name} exited unexpectedly (code ${code}, signal ${signal})`;
    });
    return child;
  }

  /** SIGKILL (the process group): no shutdown, no final status write. */
  async kill9(): Promise<void> {
    this.expectExit = true;
    if (this.child) await kill9Child(this.child);
  }

  /** SIGTERM, SIGKILL after 12 s. */
  async stop(): Promise<void> {
    this.expectExit = true;
    if (this.child) await terminate(this.child, { signal: 'SIGTERM', timeoutMs: 12_000 });
  }

  /** For failure messages: what the process said last. */
  describe(lines = 15): string {
    const tail = this.logs
      .slice(-lines)
      .map((l) => JSON.stringify(l))
      .join('\n');
    return `--- ${this.kind} ${this.name} (${this.from}, incarnation ${this.incarnation}, alive ${this.alive})\n${tail}\n${this.stderr.slice(-2000)}`;
  }
}

export interface AgentProcessOptions {
  node: string;
  cluster: string;
  natsUrl: string;
  apiUrl: string;
  stateFile: string;
  heartbeatMs?: number;
}

/** One node: an agent child process over a memory backend persisted to `stateFile`. */
export class AgentNode extends ServiceProcess {
  constructor(readonly opts: AgentProcessOptions) {
    super('agent', opts.node, {
      MESH_NODE: opts.node,
      MESH_CLUSTER: opts.cluster,
      NATS_URL: opts.natsUrl,
      MESH_API_URL: opts.apiUrl,
      MESH_TOKEN: TOKEN,
      MESH_DATAPLANE: 'memory',
      MESH_STATE_FILE: opts.stateFile,
      MESH_HEARTBEAT_MS: String(opts.heartbeatMs ?? 500),
      MESH_RECENT_APPLIES: '1000',
    });
  }

  get node(): string {
    return this.opts.node;
  }

  /** `applied` log lines (one per successful apply), in order. */
  applies(incarnation?: number): Array<{ revision: number; ops: number; incarnation: number }> {
    return this.logs
      .filter((l) => l.msg === 'applied' && (incarnation === undefined || l.incarnation === incarnation))
      .map((l) => ({ revision: Number(l.revision), ops: Number(l.ops), incarnation: l.incarnation }));
  }
}

/** The relay as a child process; `MESH_LOG_LEVEL=debug` logs every published revision. */
export function relayProcess(name: string, env: Record<string, string>): ServiceProcess {
  return new ServiceProcess('relay', name, {
    MESH_RELAY_INSTANCE: name,
    MESH_LOG_LEVEL: 'debug',
    MESH_RELAY_POLL_MS: '500',
    MESH_RELAY_LOCK_RETRY_MS: '200',
    MESH_RELAY_SESSION_CHECK_MS: '500',
    ...env,
  });
}
