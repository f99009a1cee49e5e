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

/**
 * The same consumer, delivered by callback instead of async iteration: `onMessage` runs inside
 * the NATS client's read of the socket, for each message in order. What an agent does per
 * revision is synchronous (it queues the message), and iteration costs three promise hops per
 * message (the client's queue, this module's generator, the caller's for-await) and keeps the
 * last message of every consumer alive in the suspended generators until the next one comes:
 * a hundred agents in one heap then copy a hundred messages through every scavenge.
 *
 * `done` resolves after stop() and rejects with why the generation ended otherwise (a
 * StreamTailError, or what `onMessage` threw). Messages may arrive before the promise this
 * returns settles: `onMessage` must be ready when it is passed.
 */
export interface StreamFollower {
  readonly name: string;
  readonly pendingAtStart: number;
  readonly done: Promise<void>;
  status(): AsyncIterable<ConsumerNotification>;
  stop(): void;
}

export async function followStream(
  nc: NatsConnection,
  js: JetStreamClient,
  jsm: JetStreamManager,
  opts: StreamTailOptions,
  onMessage: (m: JsMsg) => void,
): Promise<StreamFollower> {
  let delivered = 0;
  let failed = false;
  const c = await openTail(nc, js, jsm, opts, (m, fail) => {
    if (failed) return; // the client delivers a few more while it stops
    const err = deliveryGap(opts.stream, delivered, m);
    if (err) {
      failed = true;
      fail(err);
      return;
    }
    delivered++;
    try {
      onMessage(m);
    } catch (err) {
      failed = true;
      fail(err as Error);
    }
  });
  const done = c.messages.closed().then((err) => {
    c.end();
    if (err) throw err;
  });
  done.catch(() => undefined); // observed by the caller; never an unhandled rejection meanwhile
  return {
    name: c.name,
    pendingAtStart: c.pendingAtStart,
    done,
    status: () => c.messages.status(),
    stop: c.stop,
  };
}

export async function tailStream(
  nc: NatsConnection,
  js: JetStreamClient,
  jsm: JetStreamManager,
  opts: StreamTailOptions,
): Promise<StreamTail> {
  const c = await openTail(nc, js, jsm, opts);
  const { messages } = c;
  async function* iterate(): AsyncGenerator<JsMsg> {
    let delivered = 0;
    try {
      for await (const m of messages) {
        const err = deliveryGap(opts.stream, delivered, m);
        if (err) throw err;
        delivered++;
        yield m;
      }
    } finally {
      c.end();
    }
  }
  const it = iterate();
  return {
    name: c.name,
    pendingAtStart: c.pendingAtStart,
    status: () => messages.status(),
    stop: c.stop,
    [Symbol.asyncIterator]: () => it,
  };
}

/** Consumer sequences are dense even with a filter: a jump means deliveries were dropped. */
function deliveryGap(stream: string, delivered: number, m: JsMsg): StreamTailError | undefined {
  const dseq = m.info.deliverySequence;
  if (dseq === delivered + 1) return undefined;
  return new StreamTailError(
    `delivery gap on ${stream}: expected consumer sequence ${delivered + 1}, got ${dseq} (stream sequence ${m.seq})`,
    'gap',
  );
}

/**
 * Makes the consumer and its subscription. With `callback` the client calls it for each message
 * (with `fail` to end the generation); without, the messages queue for iteration.
 */
async function openTail(
  nc: NatsConnection,
  js: JetStreamClient,
  jsm: JetStreamManager,
  opts: StreamTailOptions,
  callback?: (m: JsMsg, fail: (err: Error) => void) => void,
) {
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
  let stopped = false;
  const fail = (err: Error) => {
    if (!stopped) messages.stop(err);
  };
  const messages = await pc.consume(callback ? { callback: (m) => callback(m, fail) } : {});
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

  return {
    messages,
    name,
    pendingAtStart: info.num_pending,
    end,
    stop() {
      if (!stopped) end();
    },
  };
}
