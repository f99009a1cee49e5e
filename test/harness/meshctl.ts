import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/*
 * The BUILT meshctl (`node bin/meshctl`, so `npm run build` first; `npm test` does) as operators
 * run it: a child process with only PATH and what the test names in its environment.
 */

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin/meshctl');
const BUILT = path.join(ROOT, 'dist/services/meshctl/src/main.js');

export interface MeshctlResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  ms: number;
}

export interface MeshctlOptions {
  /** MESH_SERVER and MESH_TOKEN. */
  server: string;
  token: string;
  /** Written to its stdin, which is then closed (empty by default). */
  stdin?: string;
  env?: Record<string, string>;
  /** Runs while meshctl runs (e.g. to change what it waits for); its failure fails the call. */
  during?: () => Promise<void>;
}

/** Throws (naming the file) when the build meshctl runs from is missing. */
export function requireBuiltMeshctl(): void {
  if (!fs.existsSync(BUILT))
    throw new Error(`${BUILT} is missing: run \`npm run build\` first (npm test does)`);
}

/** Runs `node bin/meshctl ...argv` asynchronously (an API in this process keeps serving); SIGKILL after 30 s. */
export function runMeshctl(argv: string[], opts: MeshctlOptions): Promise<MeshctlResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...argv], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', MESH_SERVER: opts.server, MESH_TOKEN: opts.token, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
    child.stdin.end(opts.stdin ?? '');
    opts.during?.().catch(reject);
  });
}

/** Fails with both streams in the message, so a broken step explains itself. */
export function expectExit(r: MeshctlResult, code: number): void {
  if (r.code !== code)
    throw new Error(`expected exit ${code}, got ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
}
