import { chainHash, GENESIS_HASH } from './hashing';
import type { LogReader } from './log-reader';
import { toEvent, toHeader } from './rows';
import type { VerifyResult } from './types';

/**
 * Walks [from, to] in batches and recomputes every hash from the stored rows.
 * The first revision whose stored prev_hash or hash disagrees with the
 * recomputation, or that is missing (a gap), is reported. Triggers stop the
 * application from rewriting the log; this is what catches a superuser who did.
 */
export async function verifyChain(reader: LogReader, from = 1, to?: number): Promise<VerifyResult> {
  const head = await reader.head();
  const last = Math.min(to ?? head.revision, head.revision);
  const first = Math.max(1, from);
  let prev = GENESIS_HASH;
  if (first > 1) {
    const [before] = await reader.changeSetRows(first - 1, first - 1);
    if (before) prev = before.hash;
  }
  const bad = (revision: number, reason: string, expected: string, actual: string): VerifyResult => ({
    ok: false,
    from: first,
    to: last,
    firstBadRevision: revision,
    reason,
    expected,
    actual,
  });

  let expectedRevision = first;
  const batch = 1000;
  for (let lo = first; lo <= last; lo += batch) {
    const hi = Math.min(last, lo + batch - 1);
    const [rows, events] = await Promise.all([reader.changeSetRows(lo, hi), reader.eventRows(lo - 1, hi)]);
    let i = 0;
    for (const row of rows) {
      if (row.revision !== expectedRevision)
        return bad(expectedRevision, 'revision missing from the log', 'present', 'absent');
      const mine = [];
      while (i < events.length && events[i]!.revision === row.revision) mine.push(toEvent(events[i++]!));
      if (row.prev_hash !== prev)
        return bad(row.revision, 'prev_hash does not match the previous hash', prev, row.prev_hash);
      const h = toHeader(row);
      const recomputed = chainHash(prev, { ...h, events: mine });
      if (mine.length !== row.event_count)
        return bad(row.revision, 'event count does not match', String(row.event_count), String(mine.length));
      if (recomputed !== row.hash)
        return bad(row.revision, 'hash does not match the change set', recomputed, row.hash);
      prev = row.hash;
      expectedRevision++;
    }
    if (expectedRevision <= hi)
      return bad(expectedRevision, 'revision missing from the log', 'present', 'absent');
  }
  if (last === head.revision && last > 0 && head.hash !== prev)
    return bad(last, 'head hash does not match the last change set', prev, head.hash);
  return { ok: true, from: first, to: last, headRevision: head.revision, headHash: head.hash };
}
