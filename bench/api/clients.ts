/** The HTTP clients of the api benchmark, in their own worker thread so they do not share the server's loop. */
import path from 'node:path';
import { WorkerRpc } from '../lib/worker-rpc';
import type { HttpRunReply, HttpWorkerData, HttpWorkerReply, HttpWorkerRequest } from './http-worker';

/** The HTTP clients in their worker thread, driven one run at a time. */
export class HttpClients {
  private readonly rpc: WorkerRpc<Extract<HttpWorkerRequest, { id: number }>, HttpWorkerReply>;

  constructor(data: HttpWorkerData) {
    this.rpc = new WorkerRpc(
      path.join(__dirname, 'http-worker.js'),
      { workerData: data },
      'http client worker',
    );
  }

  async run(durationMs: number): Promise<HttpRunReply> {
    return (await this.rpc.call({ type: 'run', durationMs })) as HttpRunReply;
  }

  close(): Promise<void> {
    return this.rpc.terminate();
  }
}
