import type { ConsumerNotification } from '@nats-io/jetstream';
import { logConsumerEvents } from './consumer-events';
import type { Logger } from './logger';

function recorder(): { log: Logger; warned: Array<[string, Record<string, unknown> | undefined]> } {
  const warned: Array<[string, Record<string, unknown> | undefined]> = [];
  return {
    log: { info: () => undefined, warn: (m, f) => warned.push([m, f]), error: () => undefined },
    warned,
  };
}

async function* events(list: ConsumerNotification[]): AsyncIterable<ConsumerNotification> {
  yield* list;
}

describe('logConsumerEvents', () => {
  it('logs what delays revisions and skips the routine', async () => {
    const { log, warned } = recorder();
    await logConsumerEvents(
      events([
        { type: 'heartbeat', lastConsumerSequence: 1, lastStreamSequence: 1 },
        {
          type: 'next',
          options: { batch: 100, no_wait: false, expires: 5e9, max_bytes: 0, idle_heartbeat: 2.5e9 },
        },
        { type: 'discard', messagesLeft: 50, bytesLeft: 0 },
        { type: 'debug', code: 408, description: 'Request Timeout' },
        { type: 'heartbeats_missed', count: 2 },
        { type: 'debug', code: 409, description: 'Exceeded MaxWaiting' },
        { type: 'reset', name: 'c1' },
        { type: 'ordered_consumer_recreated', name: 'c2' },
      ]),
      log,
    );
    expect(warned.map(([, f]) => f?.event)).toEqual([
      'heartbeats_missed',
      'debug',
      'reset',
      'ordered_consumer_recreated',
    ]);
    expect(warned[0]).toEqual([
      'revision consumer event',
      { type: 'heartbeats_missed', count: 2, event: 'heartbeats_missed' },
    ]);
    expect(warned[1]![1]).toMatchObject({ code: 409, description: 'Exceeded MaxWaiting' });
  });

  it('ends quietly when the iterator fails', async () => {
    const { log, warned } = recorder();
    async function* failing(): AsyncIterable<ConsumerNotification> {
      yield { type: 'heartbeats_missed', count: 1 };
      throw new Error('closed');
    }
    await expect(logConsumerEvents(failing(), log)).resolves.toBeUndefined();
    expect(warned).toHaveLength(1);
  });
});
