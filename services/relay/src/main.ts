import { ConfigError, loadRelayConfig } from './config';
import { stdoutSink } from './logger';
import { startRelay } from './relay';

/** Stop must finish in-flight publishes, release the lock and drain NATS; bounded all the same. */
const SHUTDOWN_GRACE_MS = 10_000;

function log(level: string, msg: string, fields: Record<string, unknown> = {}): void {
  stdoutSink({ time: new Date().toISOString(), level, msg, service: 'relay', ...fields });
}

async function main(): Promise<void> {
  const config = loadRelayConfig(process.env);
  const relay = await startRelay(config);

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log('info', 'shutting down', { signal, cluster: config.cluster });
    setTimeout(() => {
      log('error', 'shutdown timed out; exiting', { graceMs: SHUTDOWN_GRACE_MS });
      process.exit(1);
    }, SHUTDOWN_GRACE_MS).unref();
    relay.stop().then(
      () => process.exit(0),
      (err: Error) => {
        log('error', 'shutdown failed', { error: err.message });
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`meshplane-relay: ${err.message}\n`);
    process.exit(2);
  }
  log('error', 'start-up failed', { error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
