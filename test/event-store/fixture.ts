import { type Change, DEFAULT_NAMESPACE } from '@meshplane/domain';
import { EventStore, type EventStoreOptions, migrateToLatest } from '@meshplane/event-store';
import { createTestDatabase, type TestDatabase } from '../harness/db';

export interface StoreFixture {
  db: TestDatabase;
  store: EventStore;
  /** Extra stores opened on the same database (other "processes"); closed by `close`. */
  openAnother(opts?: Partial<EventStoreOptions>): Promise<EventStore>;
  close(): Promise<void>;
}

/** A fresh, migrated database and a store on it; `close` drops the database. */
export async function openStoreFixture(
  prefix: string,
  opts: Partial<EventStoreOptions> = {},
): Promise<StoreFixture> {
  const db = await createTestDatabase(prefix);
  const opened: EventStore[] = [];
  try {
    await migrateToLatest(db.url);
    const open = async (o: Partial<EventStoreOptions> = {}) => {
      const s = await EventStore.open({ databaseUrl: db.url, ...opts, ...o });
      opened.push(s);
      return s;
    };
    const store = await open();
    return {
      db,
      store,
      openAnother: open,
      async close() {
        await Promise.all(opened.map((s) => s.close().catch(() => undefined)));
        await db.drop();
      },
    };
  } catch (err) {
    await db.drop();
    throw err;
  }
}

/** A workload-shaped put; the store is schema-agnostic, so any spec will do. */
export function put(name: string, spec: Record<string, unknown> = {}, kind = 'Workload'): Change {
  return {
    op: 'put',
    kind,
    namespace: DEFAULT_NAMESPACE,
    name,
    spec: { address: '127.0.1.1', node: 'node-a', labels: { app: name }, identity: name, ...spec },
  };
}

export function del(name: string, kind = 'Workload'): Change {
  return { op: 'delete', kind, namespace: DEFAULT_NAMESPACE, name };
}

export const who = { actor: 'alice', reason: 'test change' };
