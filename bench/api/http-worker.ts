/**
 * The HTTP clients of the API benchmark, in a worker thread so that the load generator does not
 * share the API server's event loop (real clients run elsewhere). `clients` concurrent loops,
 * each a keep-alive POST /v1/changes of one Workload put (a minimal HTTP/1.1 client on a raw socket,
 * node:http, or global fetch), awaiting the response.
 */
import http from 'node:http';
import net from 'node:net';
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
  /**
   * `raw`: one keep-alive socket per client writing HTTP/1.1 by hand (the lightest, like wrk);
   * `node-http`: http.request on a keep-alive Agent; `fetch`: global fetch (undici, keep-alive).
   */
  client: HttpClientKind;
  /** Added to every generation (see ChangeSequence), so two client workers never repeat a spec. */
  generationOffset: number;
}

export type HttpClientKind = 'raw' | 'node-http' | 'fetch';

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

/**
 * One keep-alive connection with one request in flight: the request is written by hand and the
 * response read up to its Content-Length (the API always sends one; anything else is an error).
 */
class RawConnection {
  private readonly socket: net.Socket;
  private buf: Buffer = Buffer.alloc(0);
  /** The server closes idle keep-alive connections (between slices); the next request reconnects. */
  closed = false;
  private waiting?: { resolve: (r: { status: number; text: string }) => void; reject: (e: Error) => void };

  constructor(url: URL) {
    this.socket = net.connect(Number(url.port), url.hostname);
    this.socket.setNoDelay(true);
    this.socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
      this.parse();
    });
    const fail = (err: Error) => {
      this.waiting?.reject(err);
      this.waiting = undefined;
    };
    this.socket.on('error', fail);
    this.socket.on('close', () => {
      this.closed = true;
      fail(new Error('connection closed by the server'));
    });
  }

  post(path: string, headers: string, body: string): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.write(
        `POST ${path} HTTP/1.1\r\nhost: ${HOST}\r\n${headers}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    });
  }

  private parse(): void {
    const end = this.buf.indexOf('\r\n\r\n');
    if (end === -1 || !this.waiting) return;
    const head = this.buf.toString('latin1', 0, end);
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    if (!length) {
      this.waiting.reject(new Error(`response without content-length: ${head.slice(0, 200)}`));
      this.waiting = undefined;
      return;
    }
    const total = end + 4 + Number(length[1]);
    if (this.buf.length < total) return;
    const text = this.buf.toString('utf8', end + 4, total);
    this.buf = this.buf.subarray(total);
    const w = this.waiting;
    this.waiting = undefined;
    w.resolve({ status: Number(head.slice(9, 12)), text });
  }

  close(): void {
    this.socket.destroy();
  }
}

const target = new URL(endpoint);
const HOST = target.host;
const rawConnections: RawConnection[] = [];

function rawPost(writer: number, body: string): Promise<{ status: number; text: string }> {
  if (!rawConnections[writer] || rawConnections[writer].closed)
    rawConnections[writer] = new RawConnection(target);
  return rawConnections[writer]!.post(
    target.pathname,
    `authorization: Bearer ${data.token}\r\ncontent-type: application/json\r\ntraceparent: ${traceparent()}\r\n`,
    body,
  );
}

async function post(writer: number): Promise<void> {
  const body = JSON.stringify({ reason: data.reason, apply: [seq.next()] });
  const res = await (data.client === 'raw'
    ? rawPost(writer, body)
    : data.client === 'fetch'
      ? fetchPost(body)
      : nodeHttpPost(body));
  if (res.status !== 201) throw new Error(`POST /v1/changes: HTTP ${res.status} ${res.text.slice(0, 300)}`);
  const rev = (JSON.parse(res.text) as { revision: number }).revision;
  if (rev > lastRevision) lastRevision = rev;
}

parentPort!.on('message', (msg: HttpWorkerRequest) => {
  if (msg.type === 'exit') {
    agent.destroy();
    for (const c of rawConnections) c?.close();
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
