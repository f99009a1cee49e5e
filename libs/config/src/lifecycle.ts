import { ConfigError } from './index';

export type LifecycleLog = (level: 'info' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/**
 * SIGTERM/SIGINT run `stop` once and exit 0 when it finishes, 1 when it fails
 * or outlives `graceMs`: an orchestrator's kill must never hang on a stuck drain.
 */
export function stopOnSignals(
  stop: () => Promise<void>,
  log: LifecycleLog,
  opts: { graceMs?: number; fields?: Record<string, unknown> } = {},
): void {
  const graceMs = opts.graceMs ?? 10_000;
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log('info', 'shutting down', { signal, ...opts.fields });
    setTimeout(() => {
      log('error', 'shutdown timed out; exiting', { graceMs });
      process.exit(1);
    }, graceMs).unref();
    stop().then(
      () => process.exit(0),
      (err: Error) => {
        log('error', 'shutdown failed', { error: err.message });
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}

/** Runs a service's main: a bad configuration exits 2 with its message, any other start-up failure 1. */
export function runMain(name: string, main: () => Promise<void>, log: LifecycleLog): void {
  main().catch((err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`${name}: ${err.message}\n`);
      process.exit(2);
    }
    log('error', 'start-up failed', {
      error: err instanceof Error ? (err.stack ?? err.message) : String(err),
    });
    process.exit(1);
  });
}
