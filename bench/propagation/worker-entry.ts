/**
 * Entry point of the benchmark's worker threads (agents, or the relay with `workerData.entry`). Other engineers rebuild dist/ while benches run, and a
 * worker that starts between tsc's emit and tsc-alias's rewrite would fail on `@meshplane/<lib>`:
 * the aliases are resolved here (to the built libs beside this file) before anything loads.
 */
import Module from 'node:module';
import path from 'node:path';
import { workerData } from 'node:worker_threads';

const dist = path.resolve(__dirname, '..', '..');
const loader = Module as unknown as { _resolveFilename: (request: string, ...rest: unknown[]) => string };
const resolve = loader._resolveFilename;
loader._resolveFilename = function resolveAlias(this: unknown, request: string, ...rest: unknown[]) {
  const alias = /^@meshplane\/([a-z0-9-]+)$/.exec(request);
  return resolve.call(this, alias ? path.join(dist, 'libs', alias[1]!, 'src') : request, ...rest);
};

require(
  (workerData as { entry?: string } | undefined)?.entry === 'relay' ? './relay-worker' : './agent-worker',
);
