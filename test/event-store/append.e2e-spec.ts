import { ConflictError, refKey, ValidationError } from '@meshplane/domain';
import { del, openStoreFixture, put, type StoreFixture, who } from './fixture';

describe('event store: append', () => {
  let f: StoreFixture;
  beforeAll(async () => {
    f = await openStoreFixture('es_append');
  });
  afterAll(async () => {
    await f?.close();
  });

  it('appends a change set as one revision with all its events and a chained hash', async () => {
    const before = await f.store.head();
    const res = await f.store.append([put('a'), put('b')], {
      ...who,
      requestId: 'req-1',
      traceContext: '00-abc-def-01',
    });
    expect(res.status).toBe('appended');
    if (res.status !== 'appended') return;
    const cs = res.changeSet;
    expect(cs.revision).toBe(before.revision + 1);
    expect(cs.events.map((e) => [e.seq, e.name, e.op, e.prevVersion])).toEqual([
      [0, 'a', 'put', null],
      [1, 'b', 'put', null],
    ]);
    expect(cs.prevHash).toBe(before.hash);
    expect(cs.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(await f.store.head()).toEqual({ revision: cs.revision, hash: cs.hash });
    const stored = await f.store.getChangeSet(cs.revision);
    expect(stored).toEqual(cs);
  });

  it('records the previous version of the resource on later events', async () => {
    const r1 = await f.store.append([put('pv', { weight: 1 })], who);
    const r2 = await f.store.append([put('pv', { weight: 2 })], who);
    const r3 = await f.store.append([del('pv')], who);
    if (r1.status !== 'appended' || r2.status !== 'appended' || r3.status !== 'appended')
      throw new Error('not appended');
    expect(r2.changeSet.events[0]!.prevVersion).toBe(r1.changeSet.revision);
    expect(r3.changeSet.events[0]).toMatchObject({ op: 'delete', prevVersion: r2.changeSet.revision });
    expect(r3.changeSet.events[0]!.spec).toBeUndefined();
    const history = await f.store.resourceHistory({ kind: 'Workload', namespace: 'default', name: 'pv' });
    expect(history.map((h) => [h.revision, h.op, h.actor])).toEqual([
      [r1.changeSet.revision, 'put', 'alice'],
      [r2.changeSet.revision, 'put', 'alice'],
      [r3.changeSet.revision, 'delete', 'alice'],
    ]);
  });

  it('writes no revision when every put equals the current spec and every delete names nothing', async () => {
    await f.store.append([put('same', { weight: 5 })], who);
    const head = await f.store.head();
    // Same spec with another key order is still the same spec.
    const res = await f.store.append(
      [
        {
          op: 'put',
          kind: 'Workload',
          namespace: 'default',
          name: 'same',
          spec: {
            weight: 5,
            identity: 'same',
            labels: { app: 'same' },
            node: 'node-a',
            address: '127.0.1.1',
          },
        },
        del('never-existed'),
      ],
      who,
    );
    expect(res).toEqual({ status: 'unchanged', headRevision: head.revision });
    expect(await f.store.head()).toEqual(head);
  });

  it('records only the effective part of a partly unchanged change set', async () => {
    await f.store.append([put('p1'), put('p2')], who);
    const res = await f.store.append([put('p1'), put('p2', { weight: 9 }), del('ghost')], who);
    if (res.status !== 'appended') throw new Error('expected appended');
    expect(res.changeSet.events.map((e) => e.name)).toEqual(['p2']);
  });

  it('rejects an empty reason or actor with a ValidationError and writes nothing', async () => {
    const head = await f.store.head();
    await expect(f.store.append([put('x')], { actor: 'alice', reason: '  ' })).rejects.toThrow(
      ValidationError,
    );
    await expect(f.store.append([put('x')], { actor: '', reason: 'r' })).rejects.toMatchObject({
      details: [{ path: 'actor', message: expect.any(String) }],
    });
    expect(await f.store.head()).toEqual(head);
  });

  it('enforces the expected head revision with a ConflictError that carries the head', async () => {
    const head = await f.store.head();
    const ok = await f.store.append([put('er1')], { ...who, expectedRevision: head.revision });
    expect(ok.status).toBe('appended');
    const err = await f.store
      .append([put('er2')], { ...who, expectedRevision: head.revision })
      .catch((e) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect(err.headRevision).toBe(head.revision + 1);
  });

  it('enforces expected versions per resource (0 = must not exist)', async () => {
    const r = await f.store.append([put('ev')], who);
    if (r.status !== 'appended') throw new Error('expected appended');
    const key = refKey({ kind: 'Workload', namespace: 'default', name: 'ev' });
    const err = await f.store
      .append([put('ev', { weight: 3 })], { ...who, expectedVersions: { [key]: 0 } })
      .catch((e) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect(err.details[0].path).toBe(`expectedVersions.${key}`);
    const ok = await f.store.append([put('ev', { weight: 3 })], {
      ...who,
      expectedVersions: { [key]: r.changeSet.revision },
    });
    expect(ok.status).toBe('appended');
  });

  it('aborts the append when the validator throws, leaving no trace', async () => {
    const head = await f.store.head();
    const err = await f.store
      .append([put('bad')], {
        ...who,
        validate: (view, changes) => {
          expect(changes).toHaveLength(1);
          expect(view.get({ kind: 'Workload', namespace: 'default', name: 'a' })).toBeDefined();
          throw new ValidationError('nope', [{ path: 'apply[0]', message: 'refused' }]);
        },
      })
      .catch((e) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect(await f.store.head()).toEqual(head);
  });

  it('replays an idempotency key per actor and writes nothing the second time', async () => {
    const opts = { ...who, idempotencyKey: 'key-1', idempotencyFingerprint: 'body-1' };
    const first = await f.store.append([put('idem')], opts);
    const head = await f.store.head();
    const again = await f.store.append([put('idem', { weight: 7 })], opts);
    expect(again.status).toBe('replayed');
    if (first.status !== 'appended' || again.status !== 'replayed') return;
    expect(again.changeSet).toEqual(first.changeSet);
    expect(await f.store.head()).toEqual(head);
    // Another actor's identical key is a different request.
    const other = await f.store.append([put('idem-bob')], { ...opts, actor: 'bob' });
    expect(other.status).toBe('appended');
  });

  it('refuses an idempotency key reused for a different request', async () => {
    await f.store.append([put('idem2')], {
      ...who,
      idempotencyKey: 'key-2',
      idempotencyFingerprint: 'body-a',
    });
    await expect(
      f.store.append([put('idem2x')], { ...who, idempotencyKey: 'key-2', idempotencyFingerprint: 'body-b' }),
    ).rejects.toThrow(ConflictError);
  });

  it('lets exactly one of 20 concurrent appends with the same expected revision win, with no gap', async () => {
    const others = await Promise.all(Array.from({ length: 4 }, () => f.openAnother({ poolSize: 5 })));
    const head = await f.store.head();
    const stores = [f.store, ...others];
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        stores[i % stores.length]!.append([put(`race-${i}`)], { ...who, expectedRevision: head.revision }),
      ),
    );
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(19);
    for (const l of lost) expect(l.reason).toBeInstanceOf(ConflictError);
    expect((await f.store.head()).revision).toBe(head.revision + 1);
  });

  it('keeps revisions dense and commit-ordered under concurrent appends from several processes', async () => {
    const stores = [
      f.store,
      ...(await Promise.all(Array.from({ length: 3 }, () => f.openAnother({ poolSize: 4 })))),
    ];
    const start = (await f.store.head()).revision;
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) => stores[i % stores.length]!.append([put(`dense-${i}`)], who)),
    );
    const revs = results
      .map((r) => (r.status === 'appended' ? r.changeSet.revision : -1))
      .sort((a, b) => a - b);
    expect(revs).toEqual(Array.from({ length: 60 }, (_, i) => start + 1 + i));
    const chain = await f.store.verify();
    expect(chain.ok).toBe(true);
    // Every process sees the others' writes when it next appends (its cache catches up).
    const last = await stores[3]!.append([del('dense-0')], who);
    expect(last.status).toBe('appended');
    const gone = await stores[1]!.append([del('dense-0')], who);
    expect(gone.status).toBe('unchanged');
  });

  it('builds on a head another process moved: no stale conflict, refusal or no-op, nothing lost', async () => {
    const a = f.store;
    const b = await f.openAnother({ poolSize: 2 });
    await a.append([put('stale-x')], who); // a now assumes the head it just wrote
    const moved = await b.append([put('stale-y', { weight: 7 })], who);
    if (moved.status !== 'appended') throw new Error('expected appended');
    const h = moved.changeSet.revision;
    // a's assumed head is h - 1: its expectation of h is right, and must win.
    const next = await a.append([put('stale-z')], { ...who, expectedRevision: h });
    expect(next).toMatchObject({
      status: 'appended',
      changeSet: { revision: h + 1, prevHash: moved.changeSet.hash },
    });
    // b's assumed head is h: an expectation of h is now stale, and the conflict names the real head.
    await expect(b.append([put('stale-w')], { ...who, expectedRevision: h })).rejects.toMatchObject({
      headRevision: h + 1,
    });
    // Versions and no-ops are judged on the real head too.
    const same = await b.append([put('stale-z')], who);
    expect(same).toEqual({ status: 'unchanged', headRevision: h + 1 });
    const ver = await b.append([put('stale-z', { weight: 2 })], {
      ...who,
      expectedVersions: { [refKey(put('stale-z'))]: h + 1 },
    });
    expect(ver.status).toBe('appended');
    // A validator refusal is confirmed against the real head, where the resource it needs exists.
    await b.append([put('stale-dep')], who);
    const needsDep = await a.append([put('stale-v')], {
      ...who,
      validate: (view) => {
        if (!view.get(put('stale-dep')))
          throw new ValidationError('missing', [{ path: 'apply[0]', message: 'stale-dep is missing' }]);
      },
    });
    expect(needsDep).toMatchObject({ status: 'appended', changeSet: { revision: h + 4 } });
    // A put equal to what a last saw is no no-op once another process deleted the resource.
    await b.append([del('stale-x')], who);
    const back = await a.append([put('stale-x')], who);
    expect(back).toMatchObject({ status: 'appended', changeSet: { revision: h + 6 } });
    expect(await a.verify()).toMatchObject({ ok: true, headRevision: h + 6 });
  });

  it('streams revisions in batches, in order', async () => {
    const head = await f.store.head();
    const seen: number[] = [];
    for await (const cs of f.store.readRevisions(1, { batchSize: 7 })) {
      seen.push(cs.revision);
      expect(cs.events.length).toBe(cs.eventCount);
    }
    expect(seen).toEqual(Array.from({ length: head.revision }, (_, i) => i + 1));
  });

  it('filters change sets by actor and resource', async () => {
    const bob = await f.store.listChangeSets({ actor: 'bob' });
    expect(bob.length).toBeGreaterThan(0);
    expect(bob.every((c) => c.actor === 'bob')).toBe(true);
    const pv = await f.store.listChangeSets({ kind: 'Workload', name: 'pv' });
    expect(pv).toHaveLength(3);
  });
  describe('group commit (concurrent appends from one process)', () => {
    it('answers each request alone: a refused or failing one does not sink its batch', async () => {
      const head = await f.store.head();
      const results = await Promise.allSettled([
        f.store.append([put('gc-1')], who),
        f.store.append([put('gc-2')], {
          ...who,
          validate: () => {
            throw new ValidationError('refused', [{ path: 'apply[0]', message: 'refused' }]);
          },
        }),
        // Postgres refuses \u0000 in jsonb: the statement fails for this request only.
        f.store.append([put('gc-3', { note: 'nul\u0000byte' })], who),
        f.store.append([put('gc-4')], who),
        f.store.append([put('gc-1')], who),
      ]);
      expect(results.map((r) => r.status)).toEqual([
        'fulfilled',
        'rejected',
        'rejected',
        'fulfilled',
        'fulfilled',
      ]);
      expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(ValidationError);
      expect(String((results[2] as PromiseRejectedResult).reason)).toMatch(/\\u0000|unicode|jsonb/i);
      const ok = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      expect(ok.map((r) => r.status)).toEqual(['appended', 'appended', 'unchanged']);
      expect((await f.store.head()).revision).toBe(head.revision + 2);
      expect((await f.store.verify()).ok).toBe(true);
    });

    it('validates each request against the state its predecessors in the batch produce', async () => {
      const head = await f.store.head();
      const results = await Promise.allSettled([
        f.store.append([put('gc-dup', { weight: 1 })], { ...who, expectedRevision: head.revision }),
        f.store.append([put('gc-dup', { weight: 2 })], { ...who, expectedRevision: head.revision }),
        f.store.append([put('gc-dup', { weight: 3 })], who),
      ]);
      expect(results[0]).toMatchObject({ status: 'fulfilled', value: { status: 'appended' } });
      expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(ConflictError);
      const third = (results[2] as PromiseFulfilledResult<import('@meshplane/event-store').AppendResult>)
        .value;
      if (third.status !== 'appended') throw new Error('expected appended');
      expect(third.changeSet.events[0]!.prevVersion).toBe(head.revision + 1);
    });

    it('replays a key used twice in one batch, and refuses it with another body', async () => {
      const opts = { ...who, idempotencyKey: 'gc-key', idempotencyFingerprint: 'one' };
      const [a, b, c] = await Promise.allSettled([
        f.store.append([put('gc-idem')], opts),
        f.store.append([put('gc-idem')], opts),
        f.store.append([put('gc-idem-x')], { ...opts, idempotencyFingerprint: 'two' }),
      ]);
      // Either of the first two may reach the lock first; the other replays its change set.
      const statuses = [a, b].map((r) => (r.status === 'fulfilled' ? r.value.status : 'rejected')).sort();
      expect(statuses).toEqual(['appended', 'replayed']);
      const [ra, rb] = [a, b].map(
        (r) => (r as PromiseFulfilledResult<{ changeSet?: { revision: number } }>).value,
      );
      expect(ra!.changeSet!.revision).toBe(rb!.changeSet!.revision);
      expect((c as PromiseRejectedResult).reason).toBeInstanceOf(ConflictError);
    });
  });
});
