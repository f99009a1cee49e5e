import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { freePort } from './ports';
import { keepDirAtExit, kill9Child, logTail } from './processes';
import { waitFor } from './wait';

/*
 * Start-up steps shared by the private servers (PrivatePostgres, PrivateNats): both pick a port,
 * retry on a lost bind race, poll readiness until the child dies or answers, and remove their
 * temp dir on destroy.
 */

/** What a private server exposes to `startOnFreePort`. */
export interface PortPickingServer {
  start(): Promise<void>;
  /** Move to another port before the next start(). */
  repick(port: number): void;
}

/**
 * `server.start()`, re-picking a free port up to 4 times when the error matches `bindRace`.
 * Only a port we picked ourselves may be re-picked: with a `fixedPort` the first error is final.
 */
export async function startOnFreePort(
  server: PortPickingServer,
  fixedPort: number | undefined,
  bindRace: RegExp,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await server.start();
      return;
    } catch (err) {
      const raced = bindRace.test(String((err as Error).message));
      if (fixedPort !== undefined || !raced || attempt >= 5) throw err;
      server.repick(await freePort());
    }
  }
}

export interface AwaitReadyOptions<T> {
  /** Readiness probe: truthy when ready; a throw counts as not ready yet. */
  probe: () => Promise<T | undefined | false>;
  /** Names the server in messages: `<label> exited during startup`, `<Owner> failed to start`. */
  label: string;
  owner: string;
  port: number;
  timeoutMs: number;
  intervalMs: number;
  /** Its log, and the byte offset this start began writing at (for the failure message). */
  logFile: string;
  logFrom: number;
}

/**
 * Poll `probe` until it succeeds; stop at once when `child` dies (bad config, port taken, ...).
 * On failure the child is SIGKILLed and the error carries the tail of this start's log.
 */
export async function awaitReady<T>(child: ChildProcess, o: AwaitReadyOptions<T>): Promise<void> {
  const died = new AbortController();
  child.once('exit', (code, signal) =>
    died.abort(new Error(`${o.label} exited during startup (code ${code}, signal ${signal})`)),
  );
  child.once('error', (err) => died.abort(err));
  try {
    await waitFor(o.probe, {
      timeoutMs: o.timeoutMs,
      intervalMs: o.intervalMs,
      what: `${o.label} on 127.0.0.1:${o.port}`,
      signal: died.signal,
    });
  } catch (err) {
    await kill9Child(child).catch(() => undefined);
    throw new Error(
      `${o.owner} failed to start on port ${o.port}: ${(err as Error).message}\n` +
        `--- ${o.logFile} ---\n${logTail(o.logFile, o.logFrom)}`,
      { cause: err },
    );
  }
}

/** Size of `file` now (0 when missing): where the next start's log lines begin. */
export function logOffset(file: string): number {
  return fs.existsSync(file) ? fs.statSync(file).size : 0;
}

/** Stop with `stop` (SIGKILL when that fails), then remove the server's temp dir. Idempotent. */
export async function destroyServer(
  dir: string,
  child: ChildProcess | undefined,
  stop: () => Promise<void>,
): Promise<void> {
  await stop().catch(() => (child ? kill9Child(child) : undefined));
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  keepDirAtExit(dir);
}
