import { EventStore, migrateToLatest } from '@meshplane/event-store';
import { PrivatePostgres } from '../harness/private-postgres';
import { put, who } from './fixture';

/** The store survives its Postgres restarting between (and during) appends, losing nothing. */
describe('event store: Postgres restarts', () => {
  let pgi: PrivatePostgres;
  let store: EventStore;
  const errors: Error[] = [];

  beforeAll(async () => {
    pgi = await PrivatePostgres.start();
    const url = await pgi.createDatabase('mesh');
    await migrateToLatest(url);
    store = await EventStore.open({ databaseUrl: url, onError: (e) => errors.push(e) });
  });
  afterAll(async () => {
    await store?.close().catch(() => undefined);
    await pgi?.destroy();
  });

  it('appends after a fast restart and after a crash, with every revision kept', async () => {
    for (let i = 0; i < 5; i++) await store.append([put(`before-${i}`)], who);
    await pgi.restart();
    // Pooled connections died with the server; the first append reconnects transparently.
    const after = await store.append([put('after-restart')], who);
    expect(after).toMatchObject({ status: 'appended', changeSet: { revision: 6 } });

    await pgi.kill9();
    await pgi.start();
    const afterCrash = await store.append([put('after-crash')], who);
    expect(afterCrash).toMatchObject({ status: 'appended', changeSet: { revision: 7 } });

    const state = await store.currentState();
    expect(state.revision).toBe(7);
    expect(state.resources.size).toBe(7);
    expect(await store.verify()).toMatchObject({ ok: true, headRevision: 7 });
  });

  it('fails an append cleanly while Postgres is down, then succeeds once it is back', async () => {
    await pgi.stop('fast');
    await expect(store.append([put('while-down')], who)).rejects.toThrow();
    await pgi.start();
    const res = await store.append([put('while-down')], who);
    expect(res).toMatchObject({ status: 'appended', changeSet: { revision: 8 } });
    expect(await store.verify()).toMatchObject({ ok: true, headRevision: 8 });
  });
});
