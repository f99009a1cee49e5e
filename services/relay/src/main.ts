import { runMain, stopOnSignals } from '@meshplane/config';
import { loadRelayConfig } from './config';
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

  stopOnSignals(() => relay.stop(), log, { graceMs: SHUTDOWN_GRACE_MS, fields: { cluster: config.cluster } });
}

runMain('meshplane-relay', main, log);
