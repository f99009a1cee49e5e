import { startAgent } from './agent';
import { ConfigError, loadAgentConfig } from './config';
import { teardownDataplane } from './dataplane';
import { consoleLogger } from './logger';

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
  const agent = await startAgent(config, { log });

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal });
    setTimeout(() => {
      log.error('shutdown timed out; exiting', { graceMs: SHUTDOWN_GRACE_MS });
      process.exit(1);
    }, SHUTDOWN_GRACE_MS).unref();
    agent.stop().then(
      () => process.exit(0),
      (err: Error) => {
        log.error('shutdown failed', { error: err.message });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: Error) => {
  process.stderr.write(`${err instanceof ConfigError ? err.message : (err.stack ?? err.message)}\n`);
  process.exit(1);
});
