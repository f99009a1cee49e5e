import type { ChangeSet } from '@meshplane/event-store';
import { revisionsFrom } from './export-publisher';

// Only the revision matters to revisionsFrom; the rest of a change set is never read.
const cs = (revision: number) => ({ revision }) as ChangeSet;

/** A log holding revisions 1..head that records each read it serves. */
function fakeLog(head: number) {
  const reads: Array<[number, number | undefined]> = [];
  return {
    reads,
    async *readRevisions(from: number, opts?: { to?: number }): AsyncGenerator<ChangeSet> {
      reads.push([from, opts?.to]);
      for (let r = from; r <= Math.min(opts?.to ?? head, head); r++) yield cs(r);
    },
  };
}

async function collect(it: AsyncIterable<ChangeSet>): Promise<number[]> {
  const out: number[] = [];
  for await (const c of it) out.push(c.revision);
  return out;
}

describe('revisionsFrom', () => {
  it('takes what is at hand and reads nothing when it covers the range', async () => {
    const log = fakeLog(10);
    expect(await collect(revisionsFrom(4, 6, [cs(4), cs(5), cs(6)], log))).toEqual([4, 5, 6]);
    expect(log.reads).toEqual([]);
  });

  it('skips what is already folded and reads the rest after what is at hand', async () => {
    const log = fakeLog(10);
    expect(await collect(revisionsFrom(5, 8, [cs(3), cs(4), cs(5), cs(6)], log))).toEqual([5, 6, 7, 8]);
    expect(log.reads).toEqual([[7, 8]]);
  });

  it('reads everything from the log when what is at hand does not start where it must', async () => {
    const log = fakeLog(10);
    expect(await collect(revisionsFrom(2, 4, [cs(3), cs(4)], log))).toEqual([2, 3, 4]);
    expect(log.reads).toEqual([[2, 4]]);
  });

  it('stops at a gap in what is at hand and reads from there', async () => {
    const log = fakeLog(10);
    expect(await collect(revisionsFrom(1, 5, [cs(1), cs(2), cs(4)], log))).toEqual([1, 2, 3, 4, 5]);
    expect(log.reads).toEqual([[3, 5]]);
  });

  it('never goes past `to`, even with more at hand', async () => {
    const log = fakeLog(10);
    expect(await collect(revisionsFrom(1, 2, [cs(1), cs(2), cs(3)], log))).toEqual([1, 2]);
    expect(log.reads).toEqual([]);
  });

  it('an empty range yields nothing and reads nothing', async () => {
    const log = fakeLog(10);
    expect(await collect(revisionsFrom(5, 4, [cs(5)], log))).toEqual([]);
    expect(log.reads).toEqual([]);
  });
});
