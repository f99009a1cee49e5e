import { RevisionCodecError, StreamTailError } from '@meshplane/messaging';
import { Restart } from './applier';

/** What the agent does after its revision consumer ended with `err`. */
export interface Resume {
  /** A new base state first (snapshot preferred): the stream cannot be folded from here. */
  rebootstrap: boolean;
  /** Wait before the next consumer, ms. */
  pauseMs: number;
  /** The backoff to carry into the next failure. */
  backoff: number;
  level: 'info' | 'warn';
  msg: string;
}

/**
 * A gap, or a revision that cannot be read, needs a new base state (a revision that cannot be
 * folded would fail the same way on a replay: the snapshot skips it). A consumer that may have
 * lost deliveries (stream-tail.ts) is reopened at once unless the last one also ended without
 * progress. Anything else (JetStream not ready after a reconnect, a timeout) backs off to `retryMs`.
 */
export function resumeAfter(
  err: unknown,
  o: { backoff: number; retryMs: number; progressed: boolean },
): Resume {
  const next = (b: number) => Math.min(o.retryMs, Math.max(50, b * 2));
  if (err instanceof Restart || err instanceof RevisionCodecError)
    return {
      rebootstrap: true,
      pauseMs: o.retryMs,
      backoff: o.backoff,
      level: 'warn',
      msg: 're-bootstrapping',
    };
  if (err instanceof StreamTailError) {
    const backoff = o.progressed ? 0 : o.backoff;
    return {
      rebootstrap: false,
      pauseMs: backoff,
      backoff: next(backoff),
      ...(err.reason === 'reconnect'
        ? { level: 'info', msg: 'nats reconnected; resuming the revision consumer' }
        : { level: 'warn', msg: 'revision consumer restarted' }),
    };
  }
  const backoff = next(o.backoff);
  return {
    rebootstrap: false,
    pauseMs: backoff,
    backoff,
    level: 'warn',
    msg: 'revision consumer failed; resuming',
  };
}
