// First: OpenTelemetry must be started before pg is loaded.
import '../../../libs/telemetry/src/register-relay';
import { runMain, stopOnSignals } from '@meshplane/config';
import { serveMetrics, telemetry } from '@meshplane/telemetry';
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
  const metrics = config.metricsPort
    ? await serveMetrics(config.metricsPort, () => relay.metrics.renderPrometheus())
    : undefined;
  log('info', 'observability', {
    cluster: config.cluster,
    metrics: metrics?.url ?? 'off (MESH_METRICS_PORT=0)',
    tracing: telemetry()?.settings.reason ?? 'off',
  });

  const stop = async () => {
    await relay.stop();
    await metrics?.close();
    await telemetry()?.shutdown(); // flush the last spans
  };
  stopOnSignals(stop, log, { graceMs: SHUTDOWN_GRACE_MS, fields: { cluster: config.cluster } });
}

runMain('meshplane-relay', main, log);
