import { RevisionCodecError, StreamTailError } from '@meshplane/messaging';
import { Restart } from './applier';
import { resumeAfter } from './resume';

describe('resumeAfter: what the agent does when its revision consumer ends', () => {
  const o = { backoff: 0, retryMs: 1000, progressed: true };

  it('a gap or an unreadable revision: a new base state, preferring the snapshot, after retryMs', () => {
    for (const err of [new Restart('revision 8 is missing (got 9)'), new RevisionCodecError('bad')])
      expect(resumeAfter(err, { ...o, backoff: 200 })).toEqual({
        rebootstrap: true,
        pauseMs: 1000,
        backoff: 200,
        level: 'warn',
        msg: 're-bootstrapping',
      });
  });

  it('a consumer that may have lost deliveries: reopened at once after progress, backing off without', () => {
    const lost = new StreamTailError('2 idle heartbeats missed on MESH_X', 'heartbeats_missed');
    expect(resumeAfter(lost, { ...o, backoff: 400 })).toMatchObject({
      rebootstrap: false,
      pauseMs: 0,
      backoff: 50,
      level: 'warn',
      msg: 'revision consumer restarted',
    });
    // Again and again without a revision in between: 50, 100, ... up to retryMs.
    let backoff = 0;
    const pauses: number[] = [];
    for (let i = 0; i < 7; i++) {
      const r = resumeAfter(lost, { ...o, backoff, progressed: false });
      pauses.push(r.pauseMs);
      backoff = r.backoff;
    }
    expect(pauses).toEqual([0, 50, 100, 200, 400, 800, 1000]);
    expect(resumeAfter(new StreamTailError('gap', 'gap'), o).msg).toBe('revision consumer restarted');
  });

  it('a reconnect is routine (info); anything else backs off from 50 ms to retryMs', () => {
    expect(resumeAfter(new StreamTailError('nats reconnected', 'reconnect'), o)).toMatchObject({
      pauseMs: 0,
      level: 'info',
      msg: 'nats reconnected; resuming the revision consumer',
    });
    const timeout = new Error('TIMEOUT');
    expect(resumeAfter(timeout, o)).toMatchObject({
      rebootstrap: false,
      pauseMs: 50,
      backoff: 50,
      level: 'warn',
    });
    expect(resumeAfter(timeout, { ...o, backoff: 800 }).pauseMs).toBe(1000);
  });
});
