/** The api benchmark's options, target and the fixed names its runs use. */
import { randomUUID } from 'node:crypto';
import type { Target } from '../lib';
import type { HttpClientKind } from './http-worker';

export const DEFAULTS = {
  /** Concurrent clients (HTTP) and concurrent appenders (store). */
  clients: 16,
  /** Seconds measured per path, in `rounds` alternating slices. */
  duration: 10,
  rounds: 4,
  /** Seconds of warm-up per path before measuring. */
  warmup: 2,
  /** Workloads seeded in each database; every measured change updates one of them. */
  population: 1000,
  /** Resources per seeding change set. */
  seedChunk: 500,
  /** Seconds of each profiled extra run (0: no profiles). */
  profileSeconds: 3,
  /**
   * HTTP client: a minimal HTTP/1.1 client on one keep-alive socket per client (default, like wrk);
   * `--raw=false` node:http on a keep-alive Agent; `--fetch` global fetch (undici). The client is not
   * what is measured, and on 2 shared cores its CPU is taken from the API under test (bench/README.md).
   */
  raw: true,
  fetch: false,
  /** Also measure the other client (interleaved, same API): how much of the gap is the load generator's CPU. */
  compareClient: true,
};
export type Args = typeof DEFAULTS;

export const CLIENT_NAMES: Record<HttpClientKind, string> = {
  raw: 'a minimal HTTP/1.1 client on one keep-alive socket per client',
  'node-http': 'node:http on a keep-alive Agent',
  fetch: 'global fetch (undici, keep-alive)',
};
export const clientKind = (a: Args): HttpClientKind => (a.fetch ? 'fetch' : a.raw ? 'raw' : 'node-http');
/** The compared client: node:http next to the minimal one, fetch next to node:http. */
export const otherClient = (k: HttpClientKind): HttpClientKind => (k === 'node-http' ? 'fetch' : 'node-http');

export const TARGETS: Record<string, Target> = {
  http_vs_append_ratio: { op: '>=', threshold: 0.5 },
};

export const CLUSTER = 'bench';
export const BOOTSTRAP_TOKEN = `bench-api-bootstrap-${randomUUID()}`;
export const OPERATOR = 'bench-operator';
export const REASON = 'bench: change one workload';
