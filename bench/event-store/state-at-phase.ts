/** Phase 3: stateAt(random revision) against currentState() on 10k resources x 100k revisions. */

import { randomUUID } from 'node:crypto';
import {
  type CommittedEvent,
  canonicalJson,
  emptyState,
  evolveInPlace,
  listResources,
  refKey,
} from '@meshplane/domain';
import { chainHash, decodeSnapshot, EventStore, encodeSnapshot, sha256Hex } from '@meshplane/event-store';
import type { TestDatabase } from '../../test/harness/db';
import {
  benchClient,
  benchPool,
  formatMs,
  median,
  nowMs,
  prng,
  progress,
  round,
  runConcurrent,
  summarize,
  timed,
} from '../lib';
import { type Args, CS_COLUMNS, EV_COLUMNS } from './common';
import { rawSelectBothOnce, rawSelectOnce, replayOnce } from './replay-phase';
import { appendOpts, workload } from './workload';

export interface BuildInfo {
  seed_change_sets: number;
  seed_resources_per_change_set: number;
  append_updates: number;
  append_updates_per_s: number;
  append_writers: number;
  bulk_revisions: number;
  bulk_revisions_per_s: number;
  snapshots_written_by_bench: number;
  snapshot_interval: number;
  snapshots_total: number;
  events_total: number;
  timings_s: Record<string, number>;
  verify: string;
  description: string;
}

/** Writes revisions (one put each) exactly as append would: same columns, hashes chained, head moved. */
export async function bulkGenerate(
  store: EventStore,
  db: TestDatabase,
  args: Args,
  rnd: () => number,
  genStart: number,
  t0: number,
): Promise<{ revisions: number; ms: number; gen: number }> {
  const start = nowMs();
  const head = await store.head();
  const versions = new Map<string, number>();
  for (const [k, r] of (await store.currentState()).resources) versions.set(k, r.version);
  let prev = head.hash;
  let gen = genStart;
  const client = benchClient(db.url, 'bench-bulk');
  await client.connect();
  try {
    for (let lo = head.revision + 1; lo <= args.revisions; lo += args.bulkBatch) {
      const hi = Math.min(args.revisions, lo + args.bulkBatch - 1);
      const batchPrev = prev;
      const cs = {
        revision: [] as number[],
        changeId: [] as string[],
        requestId: [] as string[],
        traceContext: [] as string[],
        createdAt: [] as string[],
        prevHash: [] as string[],
        hash: [] as string[],
      };
      const ev = {
        revision: [] as number[],
        kind: [] as string[],
        namespace: [] as string[],
        name: [] as string[],
        spec: [] as string[],
        prevVersion: [] as (number | null)[],
      };
      for (let revision = lo; revision <= hi; revision++) {
        const change = workload(Math.floor(rnd() * args.resources), ++gen);
        const key = refKey(change);
        const event: CommittedEvent = {
          revision,
          seq: 0,
          kind: change.kind,
          namespace: change.namespace,
          name: change.name,
          op: 'put',
          spec: change.spec,
          prevVersion: versions.get(key) ?? null,
        };
        const o = appendOpts('bench-bulk', 'bench: rolling update');
        const header = {
          revision,
          changeId: randomUUID(),
          cluster: store.cluster,
          actor: o.actor,
          reason: o.reason,
          requestId: o.requestId,
          idempotencyKey: null,
          idempotencyFingerprint: null,
          traceContext: o.traceContext,
          restoredFromRevision: null,
          metadata: {},
          createdAt: new Date(),
        };
        const hash = chainHash(prev, { ...header, events: [event] });
        cs.revision.push(revision);
        cs.changeId.push(header.changeId);
        cs.requestId.push(header.requestId);
        cs.traceContext.push(header.traceContext);
        cs.createdAt.push(header.createdAt.toISOString());
        cs.prevHash.push(prev);
        cs.hash.push(hash);
        ev.revision.push(revision);
        ev.kind.push(event.kind);
        ev.namespace.push(event.namespace);
        ev.name.push(event.name);
        ev.spec.push(JSON.stringify(event.spec));
        ev.prevVersion.push(event.prevVersion);
        versions.set(key, revision);
        prev = hash;
      }
      await client.query('BEGIN');
      try {
        const h = (await client.query('SELECT revision, hash FROM mesh_head WHERE id FOR UPDATE')).rows[0];
        if (Number(h.revision) !== lo - 1 || h.hash !== batchPrev)
          throw new Error(`head moved under the bulk generator: ${h.revision} ${h.hash}`);
        await client.query(
          `INSERT INTO change_sets (${CS_COLUMNS})
           SELECT r, c, $8, 'bench-bulk', 'bench: rolling update', q, NULL, NULL, t, NULL, '{}'::jsonb, 1, at, p, h
           FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::text[])
             AS u(r, c, q, t, at, p, h)`,
          [
            cs.revision,
            cs.changeId,
            cs.requestId,
            cs.traceContext,
            cs.createdAt,
            cs.prevHash,
            cs.hash,
            store.cluster,
          ],
        );
        await client.query(
          `INSERT INTO events (${EV_COLUMNS})
           SELECT r, 0, k, ns, n, 'put', s, pv, NULL
           FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[]::jsonb[], $6::bigint[])
             AS u(r, k, ns, n, s, pv)`,
          [ev.revision, ev.kind, ev.namespace, ev.name, ev.spec, ev.prevVersion],
        );
        await client.query('UPDATE mesh_head SET revision = $1, hash = $2 WHERE id', [hi, prev]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
      if (hi % 20_000 < args.bulkBatch || hi === args.revisions) progress(t0, `  bulk: head at ${hi}`);
    }
  } finally {
    await client.end();
  }
  return { revisions: args.revisions - head.revision, ms: nowMs() - start, gen };
}

export async function buildLargeLog(db: TestDatabase, args: Args, t0: number) {
  const timings: Record<string, number> = {};
  const rnd = prng(args.seed);
  const store = await EventStore.open({
    databaseUrl: db.url,
    poolSize: args.buildWriters + 2,
    applicationName: 'bench-state-at',
  });
  let gen = 1;
  let t = nowMs();

  // 1. every resource, through append(), in change sets of `seedBatch`.
  let seedChangeSets = 0;
  for (let lo = 0; lo < args.resources; lo += args.seedBatch) {
    const changes = [];
    for (let i = lo; i < Math.min(args.resources, lo + args.seedBatch); i++) changes.push(workload(i, gen));
    const res = await store.append(changes, appendOpts('bench-seed', 'bench: initial load'));
    if (res.status !== 'appended') throw new Error(`seed append returned ${res.status}`);
    seedChangeSets++;
  }
  timings.seed_append = (nowMs() - t) / 1000;
  progress(t0, `stateAt log: ${args.resources} resources in ${seedChangeSets} appends of ${args.seedBatch}`);

  // 2. single-resource updates through append(), for at most `appendBudget` seconds.
  t = nowMs();
  const remaining = args.revisions - seedChangeSets;
  const updates =
    remaining > 0
      ? await runConcurrent({
          writers: args.buildWriters,
          durationMs: args.appendBudget * 1000,
          maxOps: remaining,
          op: async (w) => {
            const change = workload(Math.floor(rnd() * args.resources), ++gen);
            const res = await store.append(
              [change],
              appendOpts(`bench-operator-${w}`, 'bench: rolling update'),
            );
            if (res.status !== 'appended') throw new Error(`update append returned ${res.status}`);
          },
        })
      : undefined;
  await store.flushSnapshots();
  timings.update_append = (nowMs() - t) / 1000;
  const afterAppend = (await store.head()).revision;
  progress(
    t0,
    `stateAt log: ${updates?.ops ?? 0} single-resource updates through append() in ${formatMs(updates?.elapsedMs ?? 0)} ` +
      `(${(updates?.perSecond ?? 0).toFixed(0)}/s, ${args.buildWriters} writers); head ${afterAppend}`,
  );

  // 3. the rest with the bulk generator (real hashes, rows as append writes them).
  t = nowMs();
  let bulk = { revisions: 0, ms: 0, gen };
  if (afterAppend < args.revisions) {
    progress(t0, `stateAt log: bulk-generating revisions ${afterAppend + 1}..${args.revisions}`);
    bulk = await bulkGenerate(store, db, args, rnd, gen, t0);
    gen = bulk.gen;
  }
  timings.bulk = (nowMs() - t) / 1000;

  // 4. snapshots at every interval the appends did not cover, the projection, the chain.
  t = nowMs();
  const have = new Set((await store.snapshots.list()).map((s) => s.revision));
  let written = 0;
  const interval = store.snapshotInterval;
  for (let rev = interval; interval > 0 && rev <= args.revisions; rev += interval) {
    // The store snapshots at the end of the batch that reaches a multiple, not always at it.
    if ([...have].some((h) => h >= rev && h < rev + interval)) continue;
    await store.createSnapshot(rev);
    written++;
  }
  timings.snapshots = (nowMs() - t) / 1000;
  progress(
    t0,
    `stateAt log: ${written} snapshots written (interval ${interval}) in ${formatMs(nowMs() - t)}`,
  );

  t = nowMs();
  const rebuilt = await store.rebuildProjection();
  timings.rebuild_projection = (nowMs() - t) / 1000;
  t = nowMs();
  const verify = await store.verify();
  timings.verify = (nowMs() - t) / 1000;
  if (!verify.ok) throw new Error(`chain verification failed: ${JSON.stringify(verify)}`);
  progress(
    t0,
    `stateAt log: projection rebuilt (${rebuilt.resources} resources at ${rebuilt.revision}) in ${timings.rebuild_projection.toFixed(1)} s; ` +
      `verify ok over ${verify.to} revisions in ${timings.verify.toFixed(1)} s`,
  );

  // The projection and a replay must agree before either is timed.
  const [cur, atHead] = await Promise.all([store.currentState(), store.stateAt(args.revisions)]);
  if (canonicalJson(listResources(cur)) !== canonicalJson(listResources(atHead)))
    throw new Error('currentState() and stateAt(head) differ');
  if (cur.resources.size !== args.resources)
    throw new Error(`expected ${args.resources} resources, found ${cur.resources.size}`);

  const snapshotsTotal = (await store.snapshots.list()).length;
  const eventsTotal = await store.reader.countEvents();
  const info: BuildInfo = {
    seed_change_sets: seedChangeSets,
    seed_resources_per_change_set: args.seedBatch,
    append_updates: updates?.ops ?? 0,
    append_updates_per_s: round(updates?.perSecond ?? 0, 4),
    append_writers: args.buildWriters,
    bulk_revisions: bulk.revisions,
    bulk_revisions_per_s: round(bulk.ms ? (bulk.revisions * 1000) / bulk.ms : 0, 4),
    snapshots_written_by_bench: written,
    snapshot_interval: interval,
    snapshots_total: snapshotsTotal,
    events_total: eventsTotal,
    timings_s: Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, round(v, 3)])),
    verify: `ok, revisions 1..${verify.to}, head hash ${verify.headHash}`,
    description:
      `${seedChangeSets} append() change sets of ${args.seedBatch} new Workloads, then ` +
      `${updates?.ops ?? 0} single-resource updates through append() (${args.buildWriters} writers, ` +
      `${args.appendBudget} s budget), then ${bulk.revisions} single-resource updates written by the bench's ` +
      `bulk generator (chainHash over the store's canonical encoding, rows as append writes them, head moved ` +
      `under its lock), then createSnapshot() at every ${interval} revisions not yet covered, ` +
      `rebuildProjection(), verify() ok, and currentState() == stateAt(head) checked.`,
  };
  return { store, info };
}

export async function stateAtPhase(db: TestDatabase, args: Args, t0: number) {
  const { store, info } = await buildLargeLog(db, args, t0);
  try {
    const rnd = prng(args.seed ^ 0x5eed);
    const head = (await store.head()).revision;
    for (let k = 0; k < 3; k++) {
      await store.stateAt(1 + Math.floor(rnd() * head));
      await store.currentState();
    }
    const stateAt: number[] = [];
    const current: number[] = [];
    const replayed: number[] = [];
    for (let k = 0; k < args.samples; k++) {
      const rev = 1 + Math.floor(rnd() * head);
      const measureStateAt = async () => {
        const r = await timed(() => store.stateAt(rev));
        if (r.value.revision !== rev)
          throw new Error(`stateAt(${rev}) returned revision ${r.value.revision}`);
        stateAt.push(r.ms);
      };
      const measureCurrent = async () => {
        const r = await timed(() => store.currentState());
        if (r.value.resources.size !== args.resources) throw new Error('currentState lost resources');
        current.push(r.ms);
      };
      // Alternate the order so neither always runs on warmer caches.
      if (k % 2 === 0) {
        await measureStateAt();
        await measureCurrent();
      } else {
        await measureCurrent();
        await measureStateAt();
      }
      replayed.push(store.snapshotInterval > 0 ? rev % store.snapshotInterval : rev);
    }
    const s = summarize(stateAt);
    const c = summarize(current);
    progress(
      t0,
      `stateAt: p50 ${s.p50.toFixed(1)} ms (p90 ${s.p90.toFixed(1)}), currentState: p50 ${c.p50.toFixed(1)} ms ` +
        `(p90 ${c.p90.toFixed(1)}) over ${args.samples} random revisions`,
    );

    // Where stateAt's time goes: the snapshot read+decode, and the replay after it.
    const breakdown = await stateAtBreakdown(store, head, rnd);

    // Replay of this log too (mostly one-event change sets): context for the replay ratio.
    const pool = benchPool(db.url, 2, 'bench-raw-select');
    const replayRates: number[] = [];
    const selectRates: number[] = [];
    const bothRates: number[] = [];
    let events = 0;
    try {
      await replayOnce(store);
      await rawSelectOnce(pool, head);
      await rawSelectBothOnce(pool, head);
      for (let k = 0; k < 3; k++) {
        const r = await replayOnce(store);
        events = r.events;
        replayRates.push((r.events * 1000) / r.ms);
        const q = await rawSelectOnce(pool, head);
        selectRates.push((q.rows * 1000) / q.ms);
        const b = await rawSelectBothOnce(pool, head);
        bothRates.push((b.rows * 1000) / b.ms);
      }
    } finally {
      await pool.end();
    }
    return {
      info,
      stateAt: s,
      current: c,
      replayedAfterSnapshot: summarize(replayed),
      breakdown,
      bigReplay: {
        events,
        replay_events_per_s: round(median(replayRates), 4),
        raw_select_rows_per_s: round(median(selectRates), 4),
        replay_rate_ratio: round(median(replayRates) / median(selectRates), 3),
        raw_select_change_sets_and_events_per_s: round(median(bothRates), 4),
        replay_vs_raw_select_of_both: round(median(replayRates) / median(bothRates), 3),
        note:
          'median of 3 after a warm-up; mostly one-event change sets, so the change_sets rows weigh more. ' +
          'raw_select_change_sets_and_events: both queries readRevisions issues per window, plain pg, events per second',
      },
    };
  } finally {
    await store.close();
  }
}

export async function stateAtBreakdown(store: EventStore, head: number, rnd: () => number) {
  // What writing one snapshot costs the appending process in CPU (encode + hash), synchronously.
  const cur = await store.currentState();
  const encode: number[] = [];
  for (let k = 0; k < 3; k++) {
    const a = nowMs();
    sha256Hex(encodeSnapshot(cur));
    encode.push(nowMs() - a);
  }
  const decode: number[] = [];
  const text = encodeSnapshot(cur);
  for (let k = 0; k < 3; k++) {
    const a = nowMs();
    sha256Hex(text);
    decodeSnapshot(text);
    decode.push(nowMs() - a);
  }
  const snap: number[] = [];
  const events: number[] = [];
  const apply: number[] = [];
  for (let k = 0; k < 10; k++) {
    const rev = 1 + Math.floor(rnd() * head);
    const a = nowMs();
    const state = (await store.snapshots.latestAtOrBelow(rev)) ?? emptyState();
    const b = nowMs();
    const rows = await store.reader.eventRows(state.revision, rev);
    const c = nowMs();
    for (const row of rows)
      evolveInPlace(state, {
        revision: row.revision,
        seq: row.seq,
        kind: row.kind,
        namespace: row.namespace,
        name: row.name,
        op: row.op,
        prevVersion: row.prev_version,
        ...(row.spec ? { spec: row.spec } : {}),
      });
    apply.push(nowMs() - c);
    snap.push(b - a);
    events.push(c - b);
  }
  return {
    snapshot_resources: cur.resources.size,
    snapshot_bytes: Buffer.byteLength(text),
    snapshot_encode_and_hash_ms: round(median(encode), 3),
    snapshot_hash_and_decode_ms: round(median(decode), 3),
    snapshot_read_decode_p50_ms: round(median(snap), 3),
    event_rows_read_p50_ms: round(median(events), 3),
    apply_p50_ms: round(median(apply), 3),
  };
}
