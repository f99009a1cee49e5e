import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { keepDirAtExit, removeDirAtExit } from './processes';

/** A fresh dir `<tmp>/e2e-<prefix>-XXXXXX`, also removed if the test process exits early. */
export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `e2e-${prefix}-`));
  removeDirAtExit(dir);
  return dir;
}

/** Remove a dir from tempDir now (a no-op for undefined). */
export function removeTempDir(dir: string | undefined): void {
  if (!dir) return;
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  keepDirAtExit(dir);
}

/**
 * Runs every cleanup step, each bounded by `stepTimeoutMs`, even when earlier ones fail or hang;
 * failures are reported on stderr, never thrown (afterAll must get through all of them).
 */
export async function cleanupAll(
  steps: Array<[string, (() => Promise<unknown> | unknown) | undefined]>,
  stepTimeoutMs = 20_000,
): Promise<void> {
  for (const [what, step] of steps) {
    if (!step) continue;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.resolve().then(step),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${stepTimeoutMs} ms`)), stepTimeoutMs);
        }),
      ]);
    } catch (err) {
      process.stderr.write(`cleanup of ${what} failed: ${(err as Error).message}\n`);
    } finally {
      clearTimeout(timer);
    }
  }
}
