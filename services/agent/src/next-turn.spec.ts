import { NextTurn } from './next-turn';

const turn = () => new Promise<void>((r) => setImmediate(r));

describe('NextTurn', () => {
  it('runs once on the next turn however often it was requested', async () => {
    let fired = 0;
    const t = new NextTurn(() => fired++);
    t.request();
    t.request();
    t.request();
    expect(fired).toBe(0); // never synchronously
    await turn();
    expect(fired).toBe(1);
    await turn();
    expect(fired).toBe(1);
  });

  it('runs after the callbacks already queued for this turn', async () => {
    const order: string[] = [];
    const t = new NextTurn(() => order.push('fire'));
    setImmediate(() => order.push('queued before'));
    t.request();
    setImmediate(() => order.push('queued after'));
    await turn();
    await turn();
    expect(order).toEqual(['queued before', 'fire', 'queued after']);
  });

  it('can be requested again once it ran', async () => {
    let fired = 0;
    const t = new NextTurn(() => fired++);
    t.request();
    await turn();
    t.request();
    await turn();
    expect(fired).toBe(2);
  });

  it('cancel drops a pending run; a later request runs', async () => {
    let fired = 0;
    const t = new NextTurn(() => fired++);
    t.request();
    t.cancel();
    await turn();
    expect(fired).toBe(0);
    t.cancel(); // nothing pending: no-op
    t.request();
    await turn();
    expect(fired).toBe(1);
  });
});
