import { ChildProcess, SpawnOptions, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Registry of every child the harness starts. A crashed or interrupted test run must not leave
 * postgres/nats processes behind, so an `exit` hook (and SIGINT/SIGTERM/SIGHUP hooks) SIGKILL
 * whatever is still alive. Children are started in their own process group by default so the
 * kill also reaches grandchildren (postgres backends).
 */

interface Tracked {
  child: ChildProcess;
  group: boolean;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const live = new Set<Tracked>();
let hooksInstalled = false;

export function isAlive(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

function signalTracked(t: Tracked, signal: NodeJS.Signals): void {
  if (!isAlive(t.child)) return;
  if (t.group && t.child.pid !== undefined) {
    try {
      process.kill(-t.child.pid, signal);
      return;
    } catch {
      // Group already gone or not a leader; fall through to the single pid.
    }
  }
  try {
    t.child.kill(signal);
  } catch {
    // Already dead.
  }
}

const dirsToRemove = new Set<string>();

/** Remove `dir` when the process exits (after its children are killed). */
export function removeDirAtExit(dir: string): void {
  installHooks();
  dirsToRemove.add(dir);
}

/** Undo removeDirAtExit (the owner already removed it, or wants to keep it). */
export function keepDirAtExit(dir: string): void {
  dirsToRemove.delete(dir);
}

/**
 * Synchronously SIGKILL every tracked child (and its process group), then remove registered temp
 * dirs. Safe to call at any time; the exit hooks call it.
 */
export function killAllTracked(): void {
  for (const t of live) signalTracked(t, 'SIGKILL');
  for (const dir of dirsToRemove) {
    try {
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // Best effort: the next run's sweep will retry.
    }
  }
  dirsToRemove.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllTracked);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAllTracked();
      // If nobody else handles the signal, restore the default behaviour (terminate) by
      // re-raising it without our listener; otherwise leave the decision to the other handlers.
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}

/** Number of tracked children still alive (for leak assertions in tests). */
export function trackedCount(): number {
  let n = 0;
  for (const t of live) if (isAlive(t.child)) n++;
  return n;
}

/**
 * `spawn` whose child is registered for cleanup. `detached` defaults to true (own process group,
 * killed as a group); the child is unref'd so a forgotten instance cannot keep the test process
 * alive — the exit hook kills it instead.
 */
export function spawnTracked(cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
  installHooks();
  const detached = opts.detached ?? true;
  const child = spawn(cmd, args, { stdio: 'ignore', ...opts, detached });
  const t: Tracked = { child, group: detached };
  live.add(t);
  const forget = (): void => {
    live.delete(t);
  };
  child.once('exit', forget);
  // A failed spawn (ENOENT, EACCES) emits 'error' and never 'exit'; without a listener it would throw.
  child.once('error', forget);
  child.unref();
  return child;
}

/** Resolve when `child` exits; reject after `timeoutMs` (default 10 s). */
export function waitForExit(child: ChildProcess, timeoutMs = 10_000): Promise<ExitInfo> {
  if (child.pid === undefined || !isAlive(child)) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      clearTimeout(timer);
      resolve({ code, signal });
    };
    const timer = setTimeout(() => {
      child.removeListener('exit', onExit);
      reject(new Error(`process ${child.pid} (${child.spawnfile}) did not exit within ${timeoutMs}ms`));
    }, timeoutMs);
    child.once('exit', onExit);
  });
}

/**
 * Send `signal` (default SIGTERM) to the child only and wait; if it has not exited within
 * `timeoutMs`, SIGKILL its whole group and wait again. Always bounded.
 */
export async function terminate(
  child: ChildProcess,
  opts: { signal?: NodeJS.Signals; timeoutMs?: number } = {},
): Promise<ExitInfo> {
  if (!isAlive(child)) return { code: child.exitCode, signal: child.signalCode };
  try {
    child.kill(opts.signal ?? 'SIGTERM');
  } catch {
    // Raced with its exit.
  }
  try {
    return await waitForExit(child, opts.timeoutMs ?? 10_000);
  } catch {
    return kill9Child(child);
  }
}

/** SIGKILL the child's process group (or the child) and wait for it to be reaped. */
export async function kill9Child(child: ChildProcess, timeoutMs = 10_000): Promise<ExitInfo> {
  const t = [...live].find((x) => x.child === child) ?? { child, group: false };
  signalTracked(t, 'SIGKILL');
  return waitForExit(child, timeoutMs);
}

// ---------------------------------------------------------------------------------------------
// Temp dirs. Each instance lives in os.tmpdir()/meshplane-<kind>-XXXXXX with an `owner.pid` file
// (the test process) and a `child.pid` file. If a previous run was SIGKILLed, its exit hook never
// ran; the next harness start reaps such dirs whose owner is dead.

const DIR_PREFIX = 'meshplane-';
const OWNER_FILE = 'owner.pid';
const CHILD_FILE = 'child.pid';

export function createHarnessDir(kind: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${DIR_PREFIX}${kind}-`));
  fs.writeFileSync(path.join(dir, OWNER_FILE), `${process.pid}\n`);
  return dir;
}

export function recordChildPid(dir: string, pid: number | undefined): void {
  if (pid !== undefined) fs.writeFileSync(path.join(dir, CHILD_FILE), `${pid}\n`);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readPid(file: string): number | undefined {
  try {
    const n = Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(n) && n > 1 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Reap harness dirs left by dead test processes: SIGKILL their child (only if its command line
 * still names that dir, so a recycled pid is never hit) and remove the dir. Cheap (one readdir),
 * so every harness start runs it.
 */
export function sweepStaleHarnessDirs(): void {
  let entries: string[];
  try {
    entries = fs.readdirSync(os.tmpdir()).filter((e) => e.startsWith(DIR_PREFIX));
  } catch {
    return;
  }
  for (const entry of entries) {
    const dir = path.join(os.tmpdir(), entry);
    const owner = readPid(path.join(dir, OWNER_FILE));
    if (owner === undefined || owner === process.pid || pidAlive(owner)) continue;
    const child = readPid(path.join(dir, CHILD_FILE));
    if (child !== undefined && pidAlive(child)) {
      let cmdline = '';
      try {
        cmdline = fs.readFileSync(`/proc/${child}/cmdline`, 'utf8').replaceAll('\0', ' ');
      } catch {
        // Gone meanwhile.
      }
      if (cmdline.includes(dir)) {
        for (const target of [-child, child]) {
          try {
            process.kill(target, 'SIGKILL');
          } catch {
            // Not a group leader / already dead.
          }
        }
      }
    }
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

/** Last `maxLines` lines of a log file written since byte `from` (for startup error messages). */
export function logTail(file: string, from = 0, maxLines = 40): string {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const start = Math.max(from, size - 16_384);
      const buf = Buffer.alloc(Math.max(0, size - start));
      fs.readSync(fd, buf, 0, buf.length, start);
      return buf.toString('utf8').split('\n').slice(-maxLines).join('\n').trimEnd();
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    return `<no log: ${(err as Error).message}>`;
  }
}

/**
 * Calls `onLine` with each complete line of `stream` (a child's stdout, JSON-lines logs): the
 * object when the line is JSON, otherwise the raw text.
 */
export function onLines(
  stream: NodeJS.ReadableStream,
  onLine: (json: Record<string, unknown> | undefined, raw: string) => void,
): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let json: Record<string, unknown> | undefined;
      try {
        json = JSON.parse(line) as Record<string, unknown>;
      } catch {
        json = undefined;
      }
      onLine(json, line);
    }
  });
}
