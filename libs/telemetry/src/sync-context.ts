import { type Context, type ContextManager, ROOT_CONTEXT } from '@opentelemetry/api';

/**
 * A context manager whose active context lasts only for the synchronous call of `with` (a stack),
 * never across an `await` or a callback. For processes that give every span an explicit parent
 * (all of Meshplane's: the API hands its request's context on, see register-api.ts) this is all
 * they need, and unlike AsyncLocalStorage it does not turn on async_hooks: on Node 20 those run a
 * hook for every promise of the process.
 */
export class SyncContextManager implements ContextManager {
  private current: Context = ROOT_CONTEXT;
  private enabled = false;

  active(): Context {
    return this.current;
  }

  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    context: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    if (!this.enabled) return fn.call(thisArg, ...args);
    const previous = this.current;
    this.current = context;
    try {
      return fn.call(thisArg, ...args);
    } finally {
      this.current = previous;
    }
  }

  /** Functions run in `context` when called; other values are returned as they are. */
  bind<T>(context: Context, target: T): T {
    if (typeof target !== 'function') return target;
    const fn = target as unknown as (...args: unknown[]) => unknown;
    const manager = this;
    return function (this: unknown, ...args: unknown[]) {
      return manager.with(context, () => fn.apply(this, args));
    } as unknown as T;
  }

  enable(): this {
    this.enabled = true;
    return this;
  }

  disable(): this {
    this.enabled = false;
    this.current = ROOT_CONTEXT;
    return this;
  }
}
