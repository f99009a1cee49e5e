/** Phase 2: readRevisions + evolve against a plain SELECT of the same event rows. */
import { emptyState, evolveInPlace, type MeshState } from '@meshplane/domain';
import { EventStore } from '@meshplane/event-store';
import pg from 'pg';
import type { TestDatabase } from '../../test/harness/db';
import { benchPool, median, nowMs, progress } from '../lib';
import { type Args, RAW_SELECT, RAW_SELECT_CHANGE_SETS } from './common';

export async function replayOnce(
  store: EventStore,
): Promise<{ events: number; ms: number; state: MeshState }> {
  const t = nowMs();
  const state = emptyState();
  let events = 0;
  for await (const cs of store.readRevisions(1)) {
    for (const e of cs.events) {
      evolveInPlace(state, e);
      events++;
    }
  }
  return { events, ms: nowMs() - t, state };
}

/** The same event rows, in the same 500-revision windows readRevisions uses, with pg and nothing else. */
export async function rawSelectOnce(
  pool: pg.Pool,
  head: number,
  window = 500,
): Promise<{ rows: number; ms: number }> {
  const t = nowMs();
  let rows = 0;
  for (let lo = 1; lo <= head; lo += window) {
    const r = await pool.query(RAW_SELECT, [lo, Math.min(head, lo + window - 1)]);
    rows += r.rowCount ?? 0;
  }
  return { rows, ms: nowMs() - t };
}

/**
 * Both queries readRevisions issues per window (change sets and events, in
 * parallel on two connections), with pg and nothing else: what reading the
 * headers costs before the store does anything with them.
 */
export async function rawSelectBothOnce(
  pool: pg.Pool,
  head: number,
  window = 500,
): Promise<{ rows: number; ms: number }> {
  const t = nowMs();
  let rows = 0;
  for (let lo = 1; lo <= head; lo += window) {
    const range = [lo, Math.min(head, lo + window - 1)];
    const [a, b] = await Promise.all([
      pool.query(RAW_SELECT_CHANGE_SETS, range),
      pool.query(RAW_SELECT, range),
    ]);
    rows += b.rowCount ?? 0;
    if (!a.rowCount) throw new Error('no change sets read');
  }
  return { rows, ms: nowMs() - t };
}

export async function replayPhase(db: TestDatabase, args: Args, t0: number) {
  const store = await EventStore.open({ databaseUrl: db.url, poolSize: 4, applicationName: 'bench-replay' });
  const pool = benchPool(db.url, 1, 'bench-raw-select');
  try {
    const head = (await store.head()).revision;
    // Warm caches (shared buffers, OS page cache, JIT) for both sides first.
    const warm = await replayOnce(store);
    await rawSelectOnce(pool, head);
    const current = await store.currentState();
    if (warm.state.resources.size !== current.resources.size)
      throw new Error(
        `replay gave ${warm.state.resources.size} resources, the projection has ${current.resources.size}`,
      );
    const replayRates: number[] = [];
    const selectRates: number[] = [];
    let events = 0;
    for (let k = 0; k < args.replayRuns; k++) {
      const r = await replayOnce(store);
      events = r.events;
      replayRates.push((r.events * 1000) / r.ms);
      const s = await rawSelectOnce(pool, head);
      if (s.rows !== r.events) throw new Error(`raw select read ${s.rows} rows, replay ${r.events} events`);
      selectRates.push((s.rows * 1000) / s.ms);
    }
    const replay = median(replayRates);
    const select = median(selectRates);
    progress(
      t0,
      `replay: ${events} events / ${head} revisions: readRevisions+evolve ${replay.toFixed(0)} events/s, ` +
        `plain SELECT ${select.toFixed(0)} rows/s (median of ${args.replayRuns})`,
    );
    return { head, events, replay, select, replayRates, selectRates };
  } finally {
    await pool.end();
    await store.close();
  }
}
