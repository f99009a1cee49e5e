// First: OpenTelemetry is set up before anything else loads.
import '../../../libs/telemetry/src/register-agent';
import { runMain, stopOnSignals } from '@meshplane/config';
import { serveMetrics, telemetry } from '@meshplane/telemetry';
import { startAgent } from './agent';
import { loadAgentConfig } from './config';
import { teardownDataplane } from './dataplane';
import { consoleLogger } from './logger';
import { AgentObserver } from './metrics';

const SHUTDOWN_GRACE_MS = 10_000;

async function main(): Promise<void> {
  const config = loadAgentConfig(process.env);
  const log = consoleLogger({ component: 'agent', node: config.node, cluster: config.cluster });
  if (config.teardown) {
    // MESH_TEARDOWN=1: the operator's way to remove this node's data plane (never on SIGTERM).
    const report = teardownDataplane(config, log);
    process.exit(report.cgroupsLeft.length > 0 ? 3 : 0);
  }
  log.info('starting', {
    dataplane: config.dataplane,
    nats: config.natsUrl,
    api: config.apiUrl ?? null,
    cgroup: config.cgroup ?? null,
    pid: process.pid,
  });
  const observer = new AgentObserver(config.node, config.cluster);
  const agent = await startAgent(config, { log, observer });
  const metrics = config.metricsPort
    ? await serveMetrics(config.metricsPort, () => observer.render())
    : undefined;
  log.info('observability', {
    metrics: metrics?.url ?? 'off (MESH_METRICS_PORT=0)',
    tracing: telemetry()?.settings.reason ?? 'off',
  });

  stopOnSignals(
    async () => {
      await agent.stop();
      await metrics?.close();
      await telemetry()?.shutdown(); // flush the last spans
    },
    (level, msg, fields) => log[level](msg, fields),
    { graceMs: SHUTDOWN_GRACE_MS },
  );
}

runMain('meshplane-agent', main, (level, msg, fields) =>
  process.stderr.write(
    `${JSON.stringify({ time: new Date().toISOString(), level, msg, service: 'agent', ...fields })}\n`,
  ),
);
