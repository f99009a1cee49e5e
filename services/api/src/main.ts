import { ensureDatabase, migrateToLatest } from '@meshplane/event-store';
import { createApiApp } from './app';
import { stdoutSink } from './common/logger';
import { ConfigError, loadConfig, redactUrl } from './config';

const SHUTDOWN_GRACE_MS = 10_000;

function log(level: string, msg: string, fields: Record<string, unknown> = {}): void {
  stdoutSink({ time: new Date().toISOString(), level, msg, ...fields });
}

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  await ensureDatabase(config.databaseUrl);
  const { applied } = await migrateToLatest(config.databaseUrl);
  log('info', 'database ready', { database: redactUrl(config.databaseUrl), migrations: applied });

  const app = await createApiApp(config);
  await app.listen(config.port, config.host);
  const address = app.getHttpServer().address();
  log('info', 'listening', {
    host: config.host,
    port: typeof address === 'object' ? address?.port : config.port,
  });

  // Stop taking connections, let in-flight requests finish, then close the pool; bounded.
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log('info', 'shutting down', { signal });
    setTimeout(() => {
      log('error', 'shutdown timed out; exiting', { graceMs: SHUTDOWN_GRACE_MS });
      process.exit(1);
    }, SHUTDOWN_GRACE_MS).unref();
    app.close().then(
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
    process.stderr.write(`meshplane-api: ${err.message}\n`);
    process.exit(2);
  }
  log('error', 'start-up failed', { error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
