/**
 * The HTTP clients of the API benchmark, in a worker thread so that the load generator does not
 * share the API server's event loop (real clients run elsewhere). `clients` concurrent loops,
 * each a keep-alive POST /v1/changes of one Workload put (global fetch, or node:http), awaiting the response.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { runConcurrent } from '../lib';
import { ChangeSequence, traceparent } from './changes';

export interface HttpWorkerData {
  url: string;
  token: string;
  clients: number;
  population: number;
  reason: string;
  /** `fetch`: global fetch (undici, keep-alive); `node-http`: http.request on a keep-alive Agent (a lighter client). */
  client: 'fetch' | 'node-http';
  /** Added to every generation (see ChangeSequence), so two client workers never repeat a spec. */
  generationOffset: number;
}

export type HttpWorkerRequest = { type: 'run'; id: number; durationMs: number } | { type: 'exit' };

export interface HttpRunReply {
  type: 'done';
  id: number;
  ops: number;
  elapsedMs: number;
  latencies: number[];
  /** Event-loop utilization of this (client) thread over the run: 1 means the clients were CPU-bound. */
  clientElu: number;
  lastRevision: number;
}

export type HttpWorkerReply = HttpRunReply | { type: 'error'; id: number; message: string };

const data = workerData as HttpWorkerData;
const seq = new ChangeSequence(data.population, data.generationOffset);
const endpoint = `${data.url}/v1/changes`;
let lastRevision = 0;

const agent = new http.Agent({ keepAlive: true, maxSockets: data.clients });

async function fetchPost(body: string): Promise<{ status: number; text: string }> {
  const res = await fetch(endpoint, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${data.token}`,
      'content-type': 'application/json',
      traceparent: traceparent(),
    },
    body,
  });
  return { status: res.status, text: await res.text() };
}

function nodeHttpPost(body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      endpoint,
      {
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${data.token}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          traceparent: traceparent(),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function post(): Promise<void> {
  const body = JSON.stringify({ reason: data.reason, apply: [seq.next()] });
  const res = await (data.client === 'fetch' ? fetchPost(body) : nodeHttpPost(body));
  if (res.status !== 201) throw new Error(`POST /v1/changes: HTTP ${res.status} ${res.text.slice(0, 300)}`);
  const rev = (JSON.parse(res.text) as { revision: number }).revision;
  if (rev > lastRevision) lastRevision = rev;
}

parentPort!.on('message', (msg: HttpWorkerRequest) => {
  if (msg.type === 'exit') {
    agent.destroy();
    parentPort!.close();
    return;
  }
  const elu0 = performance.eventLoopUtilization();
  runConcurrent({ writers: data.clients, durationMs: msg.durationMs, op: post }).then(
    (r) => {
      const elu = performance.eventLoopUtilization(elu0);
      const reply: HttpWorkerReply = {
        type: 'done',
        id: msg.id,
        ops: r.ops,
        elapsedMs: r.elapsedMs,
        latencies: r.latencies,
        clientElu: elu.utilization,
        lastRevision,
      };
      parentPort!.postMessage(reply);
    },
    (err: Error) => parentPort!.postMessage({ type: 'error', id: msg.id, message: err.stack ?? err.message }),
  );
});
