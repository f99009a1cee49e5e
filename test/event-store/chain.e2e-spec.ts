import pg from 'pg';
import { withClient } from '../harness/db';
import { del, openStoreFixture, put, type StoreFixture, who } from './fixture';

/** Append-only enforcement in the database, and tamper detection by the hash chain. */
describe('event store: append-only log and hash chain', () => {
  let f: StoreFixture;
  beforeAll(async () => {
    f = await openStoreFixture('es_chain');
    for (let i = 1; i <= 6; i++)
      await f.store.append([put(`w${i}`, { weight: i })], { ...who, reason: `change ${i}` });
    await f.store.append([del('w1')], who);
  });
  afterAll(async () => {
    await f?.close();
  });

  const sqlAs = (statements: string[], role?: string) =>
    withClient(f.db.url, async (c) => {
      if (role) await c.query(`SET ROLE ${role}`);
      for (const s of statements) await c.query(s);
    });

  it.each([
    ['UPDATE change_sets', "UPDATE change_sets SET reason = 'rewritten' WHERE revision = 2"],
    ['DELETE change_sets', 'DELETE FROM change_sets WHERE revision = 7'],
    ['TRUNCATE change_sets', 'TRUNCATE change_sets CASCADE'],
    ['UPDATE events', "UPDATE events SET name = 'x' WHERE revision = 2"],
    ['DELETE events', 'DELETE FROM events WHERE revision = 2'],
    ['TRUNCATE events', 'TRUNCATE events'],
  ])('rejects %s even for a superuser, by trigger', async (_what, statement) => {
    await expect(sqlAs([statement])).rejects.toThrow(/append-only/);
    expect((await f.store.verify()).ok).toBe(true);
  });

  it('gives the application role no right to rewrite the log', async () => {
    await expect(
      sqlAs(["UPDATE change_sets SET reason = 'x' WHERE revision = 2"], 'meshplane_app'),
    ).rejects.toThrow(/permission denied/);
    await expect(sqlAs(['DELETE FROM events WHERE revision = 2'], 'meshplane_app')).rejects.toThrow(
      /permission denied/,
    );
  });

  it('verifies an intact chain and returns the head', async () => {
    const head = await f.store.head();
    const res = await f.store.verify();
    expect(res).toEqual({
      ok: true,
      from: 1,
      to: head.revision,
      headRevision: head.revision,
      headHash: head.hash,
    });
    expect(await f.store.verify(3, 5)).toMatchObject({ ok: true, from: 3, to: 5 });
  });

  describe('tampering as a superuser with triggers disabled', () => {
    // Each case tampers, checks, and restores the original row so the next case starts intact.
    const tamper = async (update: string, restore: string) => {
      await sqlAs(['SET session_replication_role = replica', update]);
      return async () => sqlAs(['SET session_replication_role = replica', restore]);
    };

    it('names the revision whose event spec was changed', async () => {
      const original = await withClient(f.db.url, (c: pg.Client) =>
        c.query('SELECT spec::text AS s FROM events WHERE revision = 3 AND seq = 0'),
      );
      const restore = await tamper(
        `UPDATE events SET spec = jsonb_set(spec, '{weight}', '99') WHERE revision = 3`,
        `UPDATE events SET spec = '${original.rows[0].s}'::jsonb WHERE revision = 3`,
      );
      try {
        const res = await f.store.verify();
        expect(res).toMatchObject({
          ok: false,
          firstBadRevision: 3,
          reason: 'hash does not match the change set',
        });
        // A range that ends before the tampered revision still verifies.
        expect((await f.store.verify(1, 2)).ok).toBe(true);
      } finally {
        await restore();
      }
      expect((await f.store.verify()).ok).toBe(true);
    });

    it('names the revision whose actor was changed', async () => {
      const restore = await tamper(
        "UPDATE change_sets SET actor = 'mallory' WHERE revision = 5",
        "UPDATE change_sets SET actor = 'alice' WHERE revision = 5",
      );
      try {
        expect(await f.store.verify()).toMatchObject({ ok: false, firstBadRevision: 5 });
      } finally {
        await restore();
      }
    });

    it('names a revision whose event was deleted', async () => {
      const row = await withClient(f.db.url, (c: pg.Client) =>
        c.query(
          'SELECT kind, namespace, name, op, spec::text AS spec, prev_version FROM events WHERE revision = 4',
        ),
      );
      const e = row.rows[0];
      const restore = await tamper(
        'DELETE FROM events WHERE revision = 4',
        `INSERT INTO events (revision, seq, kind, namespace, name, op, spec, prev_version)
         VALUES (4, 0, '${e.kind}', '${e.namespace}', '${e.name}', '${e.op}', '${e.spec}'::jsonb, ${e.prev_version ?? 'NULL'})`,
      );
      try {
        expect(await f.store.verify()).toMatchObject({ ok: false, firstBadRevision: 4 });
      } finally {
        await restore();
      }
      expect((await f.store.verify()).ok).toBe(true);
    });

    it('names a revision whose stored hash was rewritten', async () => {
      const orig = await withClient(f.db.url, (c: pg.Client) =>
        c.query('SELECT hash FROM change_sets WHERE revision = 2'),
      );
      const restore = await tamper(
        `UPDATE change_sets SET hash = repeat('a', 64) WHERE revision = 2`,
        `UPDATE change_sets SET hash = '${orig.rows[0].hash}' WHERE revision = 2`,
      );
      try {
        expect(await f.store.verify()).toMatchObject({ ok: false, firstBadRevision: 2 });
      } finally {
        await restore();
      }
    });
  });
});
