import { AppliedWaiters } from './applied-waiters';

describe('AppliedWaiters', () => {
  afterEach(() => jest.useRealTimers());

  it('resolves at once for what the maps hold, and after the apply that reaches the revision', async () => {
    let applied = 3;
    const w = new AppliedWaiters(
      () => applied,
      () => `at ${applied}`,
    );
    await expect(w.wait(3, 1_000)).resolves.toBeUndefined();
    let done = false;
    const later = w.wait(5, 1_000).then(() => {
      done = true;
    });
    applied = 4;
    w.check();
    await Promise.resolve();
    expect(done).toBe(false);
    applied = 6; // coalesced past it
    w.check();
    await later;
    expect(done).toBe(true);
  });

  it('rejects after the timeout with where the node stands, and forgets the waiter', async () => {
    jest.useFakeTimers();
    const w = new AppliedWaiters(
      () => 1,
      () => 'n1 at 1, ERROR, boom',
    );
    const p = w.wait(2, 500);
    jest.advanceTimersByTime(500);
    await expect(p).rejects.toThrow('revision 2 not applied within 500ms (n1 at 1, ERROR, boom)');
    expect(() => w.check()).not.toThrow();
  });

  it('waits without a timer when the timeout is Infinity', async () => {
    jest.useFakeTimers();
    let applied = 1;
    const w = new AppliedWaiters(
      () => applied,
      () => 'n1',
    );
    const p = w.wait(2, Number.POSITIVE_INFINITY);
    expect(jest.getTimerCount()).toBe(0);
    applied = 2;
    w.check();
    await expect(p).resolves.toBeUndefined();
  });
});
