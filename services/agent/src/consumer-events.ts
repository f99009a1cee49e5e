import type { ConsumerNotification } from '@nats-io/jetstream';
import type { Logger } from './logger';

/** Routine events of the revision consumer: idle heartbeats, flow control (and a pull's, should one be used). */
const ROUTINE_CONSUMER_EVENTS = new Set(['heartbeat', 'next', 'flow_control', 'discard']);

/**
 * The revision consumer's own troubles (missed heartbeats, a deleted consumer, a status from the
 * server) are logged: each one means revisions may have waited up to two idle heartbeats
 * (MESH_CONSUMER_HEARTBEAT_MS each) before the agent opened a new consumer.
 */
export async function logConsumerEvents(
  events: AsyncIterable<ConsumerNotification>,
  log: Logger,
): Promise<void> {
  try {
    for await (const e of events) {
      if (ROUTINE_CONSUMER_EVENTS.has(e.type) || (e.type === 'debug' && e.code === 408)) continue;
      log.warn('revision consumer event', { ...e, event: e.type });
    }
  } catch {
    // the iterator ends with the consumer; nothing to report after that
  }
}
