export interface WaitForOptions {
  /** Overall deadline; default 10 000 ms. */
  timeoutMs?: number;
  /** Pause between attempts; default 50 ms. */
  intervalMs?: number;
  /** Used in the timeout message: `timed out after Nms waiting for <what>`. */
  what?: string;
  /** Give up early (rejecting with the abort reason), e.g. when the awaited process died. */
  signal?: AbortSignal;
}

const TIMED_OUT: unique symbol = Symbol('timed out');

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Poll `fn` until it returns a truthy value and return that value. A thrown error counts as a
 * failed attempt (it is remembered and reported on timeout). Each attempt and each pause is raced
 * against the deadline, so a hung attempt cannot stall the caller past it.
 */
export async function waitFor<T>(
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  opts: WaitForOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 50;
  const what = opts.what ?? 'condition';
  const { signal } = opts;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;

  // Resolves with TIMED_OUT after `ms`, or rejects when `signal` aborts; always cleaned up.
  const bounded = async <V>(p: Promise<V>, ms: number): Promise<V | typeof TIMED_OUT> => {
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    try {
      return await Promise.race([
        p,
        new Promise<typeof TIMED_OUT>((resolve, reject) => {
          timer = setTimeout(() => resolve(TIMED_OUT), ms);
          if (signal) {
            onAbort = () => reject(signal.reason);
            signal.addEventListener('abort', onAbort, { once: true });
          }
        }),
      ]);
    } finally {
      clearTimeout(timer);
      if (signal && onAbort) signal.removeEventListener('abort', onAbort);
    }
  };

  for (;;) {
    signal?.throwIfAborted();
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    const attempt = Promise.resolve().then(fn);
    // A late rejection of an attempt we stopped waiting for must not become unhandled.
    attempt.catch(() => undefined);
    try {
      const value = await bounded(attempt, remaining);
      if (value !== TIMED_OUT && value) return value as T;
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      lastError = err;
    }
    const pause = Math.min(intervalMs, deadline - Date.now());
    if (pause > 0) await bounded(sleep(pause), pause);
  }
  const suffix = lastError === undefined ? '' : ` (last error: ${describe(lastError)})`;
  throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${suffix}`, { cause: lastError });
}
