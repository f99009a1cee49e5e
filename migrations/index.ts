import type { Migration } from 'kysely';
import * as m0001 from './0001_event_log';
import * as m0002 from './0002_api_tokens';

/**
 * Every migration, in order. A static list rather than a folder scan: Kysely's
 * FileMigrationProvider imports dynamically, which Jest cannot follow.
 * Forward-only: a shipped migration is never edited, a new one is appended.
 */
export const migrations: Record<string, Migration> = {
  '0001_event_log': m0001,
  '0002_api_tokens': m0002,
};
