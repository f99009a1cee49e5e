export interface BackoffOptions {
  /** First delay; default 100 ms. */
  initialMs?: number;
  /** Cap; default 60 s (Cilium StateDB reconciler: 100 ms -> 1 min). */
  maxMs?: number;
  factor?: number;
  /** +-fraction of random spread so that many agents failing together do not retry in lockstep; default 0.2. */
  jitter?: number;
  random?: () => number;
}

/** Exponential backoff: initial, initial*factor, ... capped at max; reset after a success. */
export class Backoff {
  private n = 0;
  constructor(private readonly opts: BackoffOptions = {}) {}

  /** Failures since the last reset. */
  get attempts(): number {
    return this.n;
  }

  next(): number {
    const initial = this.opts.initialMs ?? 100;
    const max = this.opts.maxMs ?? 60_000;
    const base = Math.min(max, initial * (this.opts.factor ?? 2) ** this.n);
    this.n++;
    const jitter = this.opts.jitter ?? 0.2;
    const spread = base * jitter * (2 * (this.opts.random ?? Math.random)() - 1);
    return Math.max(0, Math.round(Math.min(max, base + spread)));
  }

  reset(): void {
    this.n = 0;
  }
}

/** Runs async sections one at a time, in call order. */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn, fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
