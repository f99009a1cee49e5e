import { runMain, stopOnSignals } from '@meshplane/config';
import { loadImporterConfig } from './config';
import { startImporter } from './importer';
import { stdoutSink } from './logger';

function log(level: string, msg: string, fields: Record<string, unknown> = {}): void {
  stdoutSink({ time: new Date().toISOString(), level, msg, service: 'importer', ...fields });
}

async function main(): Promise<void> {
  const config = loadImporterConfig(process.env);
  const importer = await startImporter(config);
  stopOnSignals(() => importer.stop(), log, { graceMs: 10_000, fields: { cluster: config.cluster } });
}

runMain('meshplane-importer', main, log);
