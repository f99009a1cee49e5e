import { followStream, type StreamTail, StreamTailError, tailStream } from '@meshplane/messaging';
import { type JetStreamClient, type JsMsg, jetstream, StorageType } from '@nats-io/jetstream';
import { type NatsTools, natsTools, randomCluster } from './helpers';

const NATS_URL = process.env.NATS_URL || 'nats://127.0.0.1:4222';

/** The next `n` messages (fewer if the tail ends); the tail goes on (a for-await break would end it). */
async function take(tail: StreamTail, n: number): Promise<JsMsg[]> {
  const it = tail[Symbol.asyncIterator]();
  const out: JsMsg[] = [];
  while (out.length < n) {
    const r = await it.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

describe('tailStream: how agents and importers read a stream (a push consumer per generation)', () => {
  const id = randomCluster('tail');
  const stream = `TAIL_${id.replace(/[^a-zA-Z0-9]/g, '_')}`;
  const subject = (s: string) => `tail.${id}.${s}`;
  let nats: NatsTools;
  let js: JetStreamClient;

  beforeAll(async () => {
    nats = await natsTools(NATS_URL);
    js = jetstream(nats.nc);
    await nats.jsm.streams.add({ name: stream, subjects: [`tail.${id}.>`], storage: StorageType.Memory });
    for (let i = 1; i <= 6; i++)
      await js.publish(subject(i % 2 ? 'a' : 'b'), new TextEncoder().encode(`m${i}`));
  });

  afterAll(async () => {
    await nats?.jsm.streams.delete(stream).catch(() => undefined);
    await nats?.close();
  });

  const consumerNames = async () => {
    const names: string[] = [];
    for await (const c of nats.jsm.consumers.list(stream)) names.push(c.name);
    return names;
  };

  it('delivers from a sequence on, in order, one subject if asked; stop() ends it and deletes the consumer', async () => {
    const all = await tailStream(nats.nc, js, nats.jsm, { stream, startSeq: 2 });
    expect((await take(all, 5)).map((m) => m.seq)).toEqual([2, 3, 4, 5, 6]);
    expect(await consumerNames()).toContain(all.name);
    all.stop();
    // The generator ends without an error once stopped.
    expect(await take(all, 1)).toEqual([]);

    const odd = await tailStream(nats.nc, js, nats.jsm, { stream, startSeq: 2, filterSubject: subject('a') });
    const got = await take(odd, 2);
    expect(got.map((m) => [m.seq, m.subject, new TextDecoder().decode(m.data)])).toEqual([
      [3, subject('a'), 'm3'],
      [5, subject('a'), 'm5'],
    ]);
    // Messages published later arrive without any request from the reader.
    await js.publish(subject('a'), new TextEncoder().encode('m7'));
    expect((await take(odd, 1)).map((m) => m.seq)).toEqual([7]);
    odd.stop();
    for (let i = 0; i < 50 && (await consumerNames()).length > 0; i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(await consumerNames()).toEqual([]);
  });

  it('a consumer lost on the server ends the tail with missed heartbeats; reopening after the last seen resumes', async () => {
    const tail = await tailStream(nats.nc, js, nats.jsm, { stream, startSeq: 1, idleHeartbeatMs: 500 });
    const first = await take(tail, 3);
    await nats.jsm.consumers.delete(stream, tail.name);
    const t0 = Date.now();
    const ended = take(tail, 100).then(
      () => undefined,
      (e: unknown) => e,
    );
    const err = await ended;
    expect(err).toBeInstanceOf(StreamTailError);
    expect((err as StreamTailError).reason).toBe('heartbeats_missed');
    // Two heartbeats of 500 ms, checked every 500 ms: well under the 5 s default.
    expect(Date.now() - t0).toBeLessThan(5_000);
    const next = await tailStream(nats.nc, js, nats.jsm, { stream, startSeq: first.at(-1)!.seq + 1 });
    expect((await take(next, 1))[0]!.seq).toBe(4);
    next.stop();
  });

  describe('followStream: the same consumer, by callback (what agents use)', () => {
    /** Resolves once `got` holds `n` messages. */
    const until = async (got: JsMsg[], n: number) => {
      for (let i = 0; i < 250 && got.length < n; i++) await new Promise((r) => setTimeout(r, 20));
    };

    it('calls back for each message in order, from a sequence on; stop() resolves done and deletes the consumer', async () => {
      const last = (await nats.jsm.streams.info(stream)).state.last_seq;
      const got: JsMsg[] = [];
      const f = await followStream(nats.nc, js, nats.jsm, { stream, startSeq: 3 }, (m) => got.push(m));
      await until(got, last - 2);
      expect(got.map((m) => m.seq)).toEqual(Array.from({ length: last - 2 }, (_, i) => i + 3));
      expect(f.pendingAtStart).toBe(last - 2);
      expect(await consumerNames()).toContain(f.name);
      // Messages published later arrive by themselves too.
      await js.publish(subject('b'), new TextEncoder().encode('later'));
      await until(got, last - 1);
      expect(got.at(-1)!.seq).toBe(last + 1);
      f.stop();
      await expect(f.done).resolves.toBeUndefined();
      for (let i = 0; i < 50 && (await consumerNames()).includes(f.name); i++)
        await new Promise((r) => setTimeout(r, 20));
      expect(await consumerNames()).not.toContain(f.name);
    });

    it('ends with what the callback threw, and delivers nothing after it', async () => {
      const seen: number[] = [];
      const f = await followStream(nats.nc, js, nats.jsm, { stream, startSeq: 1 }, (m) => {
        seen.push(m.seq);
        if (m.seq === 2) throw new Error('cannot take revision 2');
      });
      await expect(f.done).rejects.toThrow('cannot take revision 2');
      await new Promise((r) => setTimeout(r, 100));
      expect(seen).toEqual([1, 2]);
    });

    it('a consumer lost on the server rejects done with missed heartbeats', async () => {
      const got: JsMsg[] = [];
      const f = await followStream(
        nats.nc,
        js,
        nats.jsm,
        { stream, startSeq: 1, idleHeartbeatMs: 500 },
        (m) => got.push(m),
      );
      await until(got, 3);
      await nats.jsm.consumers.delete(stream, f.name);
      const err = await f.done.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(StreamTailError);
      expect((err as StreamTailError).reason).toBe('heartbeats_missed');
    });

    it('refuses a start before sequence 1 and a stream that does not exist', async () => {
      const never = () => undefined;
      await expect(followStream(nats.nc, js, nats.jsm, { stream, startSeq: 0 }, never)).rejects.toThrow(
        'startSeq must be a positive integer, got 0',
      );
      await expect(
        followStream(nats.nc, js, nats.jsm, { stream: `${stream}_MISSING`, startSeq: 1 }, never),
      ).rejects.toThrow(/stream not found/);
    });
  });

  it('refuses a start before sequence 1 and a stream that does not exist', async () => {
    await expect(tailStream(nats.nc, js, nats.jsm, { stream, startSeq: 0 })).rejects.toThrow(
      'startSeq must be a positive integer, got 0',
    );
    await expect(
      tailStream(nats.nc, js, nats.jsm, { stream: `${stream}_MISSING`, startSeq: 1 }),
    ).rejects.toThrow(/stream not found/);
  });
});
