import pg from 'pg';
import { nowMs } from './timing';

type QueryFn = (...args: unknown[]) => unknown;

export interface StatementStats {
  count: number;
  totalMs: number;
  meanMs: number;
}

/**
 * Times every promise-returning `pg.Client#query` in this process while `fn`
 * runs, grouped by `classify(sql)` (statements it returns undefined for are
 * grouped as "other"). It measures from the call to the resolution, so it
 * includes waiting for locks and for the WAL flush, which is the point: it
 * shows where an operation's wall time goes without touching the code under test.
 */
export async function profileStatements<T>(
  classify: (sql: string) => string | undefined,
  fn: () => Promise<T>,
): Promise<{ value: T; stats: Record<string, StatementStats> }> {
  const proto = pg.Client.prototype as unknown as { query: QueryFn };
  const original = proto.query;
  const acc = new Map<string, { count: number; totalMs: number }>();
  proto.query = function (this: unknown, ...args: unknown[]) {
    const first = args[0] as string | { text?: string } | undefined;
    const text = typeof first === 'string' ? first : first?.text;
    const t0 = nowMs();
    const result = original.apply(this, args);
    if (text && result && typeof (result as Promise<unknown>).then === 'function') {
      const key = classify(text) ?? 'other';
      (result as Promise<unknown>).then(
        () => {
          const a = acc.get(key) ?? { count: 0, totalMs: 0 };
          a.count++;
          a.totalMs += nowMs() - t0;
          acc.set(key, a);
        },
        () => undefined,
      );
    }
    return result;
  };
  try {
    const value = await fn();
    const stats: Record<string, StatementStats> = {};
    for (const [k, a] of acc) stats[k] = { ...a, meanMs: a.totalMs / a.count };
    return { value, stats };
  } finally {
    proto.query = original;
  }
}
