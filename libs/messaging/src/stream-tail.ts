import {
  AckPolicy,
  type ConsumerConfig,
  type ConsumerNotification,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { createInbox, type NatsConnection, nanos } from '@nats-io/transport-node';

/*
 * Reading a stream in order from a sequence on: an ephemeral PUSH consumer (no acks, flow
 * control, idle heartbeats), one generation per call. Why not the library's ordered pull
 * consumer: nats-server 2.9 drops a pull request that expired a moment before a message arrives
 * without telling the client (no 408), and the client then waits two missed heartbeats (5 s with
 * 5 s pulls, 30 s with the defaults) before pulling again: a node sat 5 s behind every few
 * thousand revisions. A push consumer has no pull requests to lose. Why not the library's ordered
 * push consumer: its heartbeat is fixed at 30 s, so a consumer lost with a server would be noticed
 * only after a minute.
 *
 * A generation ends with a StreamTailError when something may have been lost (two missed
 * heartbeats, a delivery gap, e.g. the server cut a slow consumer, or a reconnect, after which the
 * server may no longer hold the consumer); the caller opens the next one from the last sequence
 * it saw + 1. stop() ends it without error.
 */

/** Why a tail ended early; reopening from the last sequence seen + 1 recovers. */
export class StreamTailError extends Error {
  constructor(
    message: string,
    readonly reason: 'heartbeats_missed' | 'gap' | 'reconnect',
  ) {
    super(message);
    this.name = 'StreamTailError';
  }
}

export interface StreamTailOptions {
  stream: string;
  /** First stream sequence delivered (>= 1). */
  startSeq: number;
  /** Only this subject of the stream (a single subject: arrays need nats-server 2.10). */
  filterSubject?: string;
  /** The server's idle heartbeat; two missed ones end the tail. Default 5 s. */
  idleHeartbeatMs?: number;
  /** The server deletes the consumer this long after its subscriber is gone (a reader that crashed). Default 60 s. */
  inactiveThresholdMs?: number;
}

export interface StreamTail extends AsyncIterable<JsMsg> {
  /** The consumer's server-assigned name. */
  readonly name: string;
  /** Messages the stream held from `startSeq` on when the consumer was made (its num_pending). */
  readonly pendingAtStart: number;
  /** Consumer notifications: heartbeats, flow control, missed heartbeats. */
  status(): AsyncIterable<ConsumerNotification>;
  /** Ends the iteration (without error) and deletes the consumer. */
  stop(): void;
}

export const DEFAULT_TAIL_HEARTBEAT_MS = 5_000;

export async function tailStream(
  nc: NatsConnection,
  js: JetStreamClient,
  jsm: JetStreamManager,
  opts: StreamTailOptions,
): Promise<StreamTail> {
  if (!Number.isSafeInteger(opts.startSeq) || opts.startSeq < 1)
    throw new RangeError(`tailStream: startSeq must be a positive integer, got ${opts.startSeq}`);
  const hbMs = opts.idleHeartbeatMs ?? DEFAULT_TAIL_HEARTBEAT_MS;
  const deliverSubject = createInbox(); // connectNats sets no inbox prefix
  const config: Partial<ConsumerConfig> = {
    ack_policy: AckPolicy.None,
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: opts.startSeq,
    deliver_subject: deliverSubject,
    flow_control: true,
    idle_heartbeat: nanos(hbMs),
    inactive_threshold: nanos(opts.inactiveThresholdMs ?? 60_000),
    mem_storage: true,
    num_replicas: 1,
    ...(opts.filterSubject ? { filter_subject: opts.filterSubject } : {}),
  };
  // Subscribed before the consumer exists: the server holds deliveries until it sees interest.
  const pc = await js.consumers.getBoundPushConsumer({
    deliver_subject: deliverSubject,
    idle_heartbeat: nanos(hbMs),
  });
  const messages = await pc.consume();
  let stopped = false;
  const fail = (err: StreamTailError) => {
    if (!stopped) messages.stop(err);
  };
  // Watched from before the consumer exists: a reconnect while it is being made may have lost it.
  const connection = nc.status();
  void (async () => {
    for await (const s of connection)
      if (s.type === 'reconnect') fail(new StreamTailError('nats reconnected', 'reconnect'));
  })().catch(() => undefined);
  const stopWatching = () => (connection as { stop?: () => void }).stop?.();
  let info: Awaited<ReturnType<JetStreamManager['consumers']['add']>>;
  try {
    info = await jsm.consumers.add(opts.stream, config);
  } catch (err) {
    stopped = true;
    messages.stop();
    stopWatching();
    throw err;
  }
  const name = info.name;

  // Missed heartbeats: the library only reports them for a plain push consumer.
  void (async () => {
    for await (const n of messages.status())
      if (n.type === 'heartbeats_missed')
        fail(new StreamTailError(`${n.count} idle heartbeats missed on ${opts.stream}`, 'heartbeats_missed'));
  })().catch(() => undefined);
  const end = () => {
    stopped = true;
    messages.stop();
    stopWatching();
    void jsm.consumers.delete(opts.stream, name).catch(() => undefined);
  };

  async function* iterate(): AsyncGenerator<JsMsg> {
    let delivered = 0;
    try {
      for await (const m of messages) {
        // Consumer sequences are dense even with a filter: a jump means deliveries were dropped.
        const dseq = m.info.deliverySequence;
        if (dseq !== delivered + 1)
          throw new StreamTailError(
            `delivery gap on ${opts.stream}: expected consumer sequence ${delivered + 1}, got ${dseq} (stream sequence ${m.seq})`,
            'gap',
          );
        delivered = dseq;
        yield m;
      }
    } finally {
      end();
    }
  }
  const it = iterate();
  return {
    name,
    pendingAtStart: info.num_pending,
    status: () => messages.status(),
    stop() {
      if (!stopped) end();
    },
    [Symbol.asyncIterator]: () => it,
  };
}
