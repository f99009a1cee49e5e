import { type Sample, stageSummaries, warmupSummary } from './stats';

const sample = (revision: number, commit: number, all: number, spans: number[] = [1]): Sample => ({
  revision,
  call: commit - 1,
  commit,
  published: commit + 1,
  receivedAllThreads: commit + 2,
  first: commit + 3,
  all,
  threads: spans.map((spanMs) => ({ spanMs, agents: 10 })),
  applyMs: [0],
});

describe('propagation stage summaries', () => {
  const samples = [sample(1, 0, 10), sample(2, 100, 150, [40, 30]), sample(3, 200, 220), sample(4, 300, 330)];

  it('lists the slowest changes first, stage by stage', () => {
    const slow = stageSummaries(samples).slowest_changes;
    expect(slow.map((x) => x.revision)).toEqual([2, 4, 3, 1]);
    expect(slow[0]).toEqual({
      revision: 2,
      commit_to_all_applied: 50,
      committed_to_published: 1,
      published_to_received_by_every_thread: 1,
      thread_received_to_last_applied: [40, 30],
      thread_run_wait_ms: [
        [null, null],
        [null, null],
      ],
      gc_ms: {},
      steal_ms: null,
    });
  });

  it("carries each change's steal beside it and sums it over the changes", () => {
    const stolen = samples.map((x, i) => ({ ...x, stealMs: [0, 30, 0, 10][i] }));
    const s = stageSummaries(stolen);
    expect(s.slowest_changes.find((x) => x.revision === 2)?.steal_ms).toBe(30);
    expect(s.slowest_changes.find((x) => x.revision === 1)?.steal_ms).toBe(0);
    expect(s.steal).toEqual({ total_ms: 40, changes_with_steal: 2 });
  });

  it('lays GC pauses beside the changes they overlapped, clipped to the change, per thread', () => {
    const slow = stageSummaries(samples, [
      { worker: 0, at: 90, ms: 20, major: false }, // 10 ms inside change 2
      { worker: 0, at: 140, ms: 5, major: false }, // 5 more
      { worker: 1, at: 149, ms: 30, major: true }, // 1 ms inside
      { worker: -1, at: 205, ms: 2, major: false }, // main thread, change 3
      { worker: -2, at: 210, ms: 3, major: false }, // relay thread, change 3
      { worker: 1, at: 160, ms: 5, major: false }, // between changes: none
    ]).slowest_changes;
    expect(slow.find((x) => x.revision === 2)?.gc_ms).toEqual({ '0': 15, '1': 1 });
    expect(slow.find((x) => x.revision === 3)?.gc_ms).toEqual({ main: 2, relay: 3 });
    expect(slow.find((x) => x.revision === 4)?.gc_ms).toEqual({});
  });

  it("sums each thread's time on a core and waiting for one, where schedstat was read", () => {
    const read = samples.map((x, i) => ({
      ...x,
      threads: x.threads.map((t) => (i === 0 ? t : { ...t, runMs: 4, waitMs: i })),
    }));
    const s = stageSummaries(read);
    expect(s.thread_run_ms).toMatchObject({ count: 4, p50: 4 });
    expect(s.thread_wait_ms).toMatchObject({ count: 4, min: 1, max: 3 });
    expect(s.slowest_changes.find((x) => x.revision === 2)?.thread_run_wait_ms).toEqual([
      [4, 1],
      [4, 1],
    ]);
    expect(s.slowest_changes.find((x) => x.revision === 1)?.thread_run_wait_ms).toEqual([[null, null]]);
  });

  it('keeps a change whose publish was not seen, with the stage unknown', () => {
    const s = { ...sample(5, 0, 99), published: undefined };
    const [slow] = stageSummaries([s]).slowest_changes;
    expect(slow?.committed_to_published).toBeNull();
    expect(slow?.published_to_received_by_every_thread).toBeNull();
  });

  it('reports warm-up changes apart, in commit order', () => {
    const w = warmupSummary([sample(1, 0, 40), sample(2, 100, 105)]);
    expect(w.by_change_ms).toEqual([40, 5]);
    expect(w.commit_to_all_applied_ms.max).toBe(40);
  });
});
