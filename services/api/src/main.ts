// First: OpenTelemetry must patch http, express, nest and pg before anything loads them.
import '../../../libs/telemetry/src/register-api';
import { runMain, stopOnSignals } from '@meshplane/config';
import { ensureDatabase, migrateToLatest } from '@meshplane/event-store';
import { telemetry } from '@meshplane/telemetry';
import { createApiApp } from './app';
import { stdoutSink } from './common/logger';
import { loadConfig, redactUrl } from './config';

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
    tracing: telemetry()?.settings.reason ?? 'off',
  });

  // Stop taking connections, let in-flight requests finish, then close the pool; bounded.
  stopOnSignals(
    async () => {
      await app.close();
      await telemetry()?.shutdown(); // flush the last spans
    },
    log,
    { graceMs: SHUTDOWN_GRACE_MS },
  );
}

runMain('meshplane-api', main, log);
