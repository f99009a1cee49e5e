import { createContextKey, ROOT_CONTEXT } from '@opentelemetry/api';
import { SyncContextManager } from './sync-context';

const KEY = createContextKey('test');

describe('SyncContextManager', () => {
  it('makes a context active for the synchronous call only, nested like a stack', () => {
    const m = new SyncContextManager().enable();
    const a = ROOT_CONTEXT.setValue(KEY, 'a');
    const b = ROOT_CONTEXT.setValue(KEY, 'b');
    const seen = m.with(a, () => {
      const inner = m.with(b, () => m.active().getValue(KEY));
      return [m.active().getValue(KEY), inner];
    });
    expect(seen).toEqual(['a', 'b']);
    expect(m.active()).toBe(ROOT_CONTEXT);
  });

  it('restores the previous context when the callback throws, and passes this and arguments', () => {
    const m = new SyncContextManager().enable();
    const a = ROOT_CONTEXT.setValue(KEY, 'a');
    expect(() =>
      m.with(a, () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(m.active()).toBe(ROOT_CONTEXT);
    const self = { n: 2 };
    expect(
      m.with(
        a,
        function (this: typeof self, x: number) {
          return this.n * x;
        },
        self,
        21,
      ),
    ).toBe(42);
  });

  it('does not carry the context across an await', async () => {
    const m = new SyncContextManager().enable();
    const a = ROOT_CONTEXT.setValue(KEY, 'a');
    const after = await m.with(a, async () => {
      await Promise.resolve();
      return m.active().getValue(KEY);
    });
    expect(after).toBeUndefined();
  });

  it('binds functions to a context and leaves other values alone; disabled it is a pass-through', () => {
    const m = new SyncContextManager().enable();
    const a = ROOT_CONTEXT.setValue(KEY, 'a');
    const bound = m.bind(a, () => m.active().getValue(KEY));
    expect(bound()).toBe('a');
    const obj = { x: 1 };
    expect(m.bind(a, obj)).toBe(obj);
    m.disable();
    expect(m.with(a, () => m.active())).toBe(ROOT_CONTEXT);
  });
});
