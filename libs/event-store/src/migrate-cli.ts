import { ensureDatabase, migrateToLatest } from './migrate';

/** `npm run migrate`: create the database when missing, then apply pending migrations. */
async function main(): Promise<void> {
  const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/meshplane';
  const created = await ensureDatabase(url);
  const { applied } = await migrateToLatest(url);
  const db = new URL(url).pathname.slice(1);
  console.log(
    JSON.stringify({
      msg: 'migrated',
      database: db,
      created,
      applied: applied.length ? applied : 'none pending',
    }),
  );
}

main().catch((err) => {
  console.error(`migrate: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
