import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { destroyCgroupTree, ownCgroupDir, teardownPinDir } from '@meshplane/dataplane';

/*
 * Everything the dataplane bench creates is registered here the moment it exists and
 * removed in reverse order at the end: on success, on failure, on SIGINT/SIGTERM and when
 * the global time limit fires. A run killed with SIGKILL cannot clean up after itself; the
 * next run sweeps what it left (only names this bench creates, only for dead pids).
 */

export const BENCH_PREFIX = 'meshplane-bench';
const STALE = new RegExp(`^${BENCH_PREFIX}-(\\d+)-[0-9a-f]{8}$`);
const STALE_TMP = new RegExp(`^${BENCH_PREFIX}-(\\d+)-(build|haproxy)-\\w{6}$`);

type Step = { what: string; run: () => unknown };

export class Cleanup {
  private readonly steps: Step[] = [];
  private running: Promise<string[]> | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private readonly onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`\n${sig}: removing everything the dataplane bench created\n`);
    void this.run().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };

  constructor(limitMs: number) {
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
    this.watchdog = setTimeout(() => {
      process.stderr.write(`\ndataplane bench: time limit of ${limitMs / 1000} s reached, cleaning up\n`);
      void this.run().finally(() => process.exit(124));
    }, limitMs);
    this.watchdog.unref();
  }

  /** Registers an undo step; steps run last-registered first. */
  add(what: string, run: () => unknown): void {
    this.steps.push({ what, run });
  }

  /** Runs every step once (also when called again or concurrently); returns the errors. */
  run(): Promise<string[]> {
    this.running ??= (async () => {
      clearTimeout(this.watchdog);
      const errors: string[] = [];
      while (this.steps.length) {
        const s = this.steps.pop()!;
        try {
          await s.run();
        } catch (err) {
          errors.push(`${s.what}: ${(err as Error).message}`);
        }
      }
      process.removeListener('SIGINT', this.onSignal);
      process.removeListener('SIGTERM', this.onSignal);
      return errors;
    })();
    return this.running;
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** Removes a bench pin root: each phase dir in it (links detached, maps unpinned), then itself. */
export function removePinRoot(root: string): void {
  if (!fs.existsSync(root)) return;
  for (const e of fs.readdirSync(root, { withFileTypes: true })) {
    if (e.isDirectory()) teardownPinDir(path.join(root, e.name));
  }
  // teardownPinDir removes an empty parent itself; this covers a root that held no phase.
  if (fs.existsSync(root)) fs.rmdirSync(root);
}

/**
 * Pin roots, cgroups (with whatever still runs in them: an orphaned HAProxy) and temporary
 * directories of earlier bench runs whose process is gone. Returns what it removed.
 */
export async function sweepStale(): Promise<string[]> {
  const dead = (m: RegExpExecArray | null) =>
    m !== null && Number(m[1]) !== process.pid && !alive(Number(m[1]));
  const stale = (name: string) => dead(STALE.exec(name));
  const removed: string[] = [];
  for (const name of fs.readdirSync('/sys/fs/bpf').filter(stale)) {
    removePinRoot(`/sys/fs/bpf/${name}`);
    removed.push(`/sys/fs/bpf/${name}`);
  }
  const own = ownCgroupDir();
  for (const name of fs.readdirSync(own).filter(stale)) {
    await destroyCgroupTree(path.join(own, name));
    removed.push(path.join(own, name));
  }
  for (const name of fs.readdirSync(os.tmpdir()).filter((n) => dead(STALE_TMP.exec(n)))) {
    fs.rmSync(path.join(os.tmpdir(), name), { recursive: true, force: true });
    removed.push(path.join(os.tmpdir(), name));
  }
  return removed;
}
