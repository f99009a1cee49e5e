/** The HTTP clients of the api benchmark, in their own worker thread so they do not share the server's loop. */
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { HttpRunReply, HttpWorkerData, HttpWorkerReply, HttpWorkerRequest } from './http-worker';

/** The HTTP clients in their worker thread, driven one run at a time. */
export class HttpClients {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (r: HttpRunReply) => void; reject: (e: Error) => void }
  >();
  private failure: Error | undefined;

  constructor(data: HttpWorkerData) {
    this.worker = new Worker(path.join(__dirname, 'http-worker.js'), { workerData: data });
    this.worker.on('message', (m: HttpWorkerReply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.type === 'done') p.resolve(m);
      else p.reject(new Error(`http client worker: ${m.message}`));
    });
    this.worker.on('error', (err) => this.failAll(err));
    this.worker.on('exit', (code) => this.failAll(new Error(`http client worker exited with ${code}`)));
  }

  private failAll(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  run(durationMs: number): Promise<HttpRunReply> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const msg: HttpWorkerRequest = { type: 'run', id, durationMs };
      this.worker.postMessage(msg);
    });
  }

  async close(): Promise<void> {
    this.failure ??= new Error('closed');
    await this.worker.terminate();
  }
}
