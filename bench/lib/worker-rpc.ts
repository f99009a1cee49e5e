import { Worker, type WorkerOptions } from 'node:worker_threads';

/** Distributive Omit, so each request variant keeps its own fields. */
export type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

/**
 * Request/reply with a benchmark's worker thread: each request carries an `id`, the reply with the
 * same id settles it (`{ type: 'error', message }` rejects). Messages without an id go to
 * `onEvent`. A worker that dies rejects everything pending and every later call.
 */
export class WorkerRpc<Req extends { id: number }, Reply extends { type: string }> {
  readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  private failure: Error | undefined;

  constructor(
    file: string,
    options: WorkerOptions,
    private readonly name: string,
    onEvent?: (m: Reply) => void,
  ) {
    this.worker = new Worker(file, options);
    this.worker.on('message', (m: Reply & { id?: number; message?: string }) => {
      if (m.id === undefined) {
        onEvent?.(m);
        return;
      }
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.type === 'error') p.reject(new Error(`${name}: ${m.message}`));
      else p.resolve(m);
    });
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', (code) => this.fail(new Error(`${name} exited with ${code}`)));
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  call(req: WithoutId<Req>): Promise<Reply> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...req, id });
    });
  }

  async terminate(): Promise<void> {
    this.failure ??= new Error(`${this.name} terminated`);
    await this.worker.terminate();
  }
}
