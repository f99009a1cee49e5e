/**
 * Promises that resolve once the maps hold a revision (AgentHandle.waitForRevision): checked
 * again after every successful apply, rejected with where the node stands after a timeout.
 */
export class AppliedWaiters {
  private readonly waiters = new Set<() => void>();

  constructor(
    /** The revision the maps hold (the checkpoint). */
    private readonly applied: () => number,
    /** Where the node stands, for the timeout's message. */
    private readonly describe: () => string,
  ) {}

  /** An apply succeeded: resolve whoever waited for what the maps now hold. */
  check(): void {
    for (const w of [...this.waiters]) w();
  }

  /** `timeoutMs` Infinity: no timer at all (a watcher that waits for every revision in turn). */
  wait(revision: number, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        if (this.applied() < revision) return;
        cleanup();
        resolve();
      };
      const timer = Number.isFinite(timeoutMs)
        ? setTimeout(() => {
            cleanup();
            reject(new Error(`revision ${revision} not applied within ${timeoutMs}ms (${this.describe()})`));
          }, timeoutMs)
        : undefined;
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }
}
