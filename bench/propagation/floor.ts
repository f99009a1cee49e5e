/**
 * The physical floor of the fan-out, measured in the same run as the agents: a plain JetStream
 * publish of a revision-sized message to as many stream readers as there are agents.
 *
 * The floor is sampled between the agents' changes (one floor message after each change), not in
 * a stretch of its own: on this shared two-core machine the load drifts within seconds, and two
 * stretches measured one after the other let the drift into `p99_ratio`. Interleaved, both sides
 * of the ratio see the same machine. Both p99s stay noisy (each is about the third-worst of 300
 * samples): four interleaved runs of one build gave 2.25 to 3.09, against 1.69 to 3.32 before.
 */
import { revisionStreamConfig, streamName } from '@meshplane/messaging';
import { type JetStreamClient, type JetStreamManager, jetstream } from '@nats-io/jetstream';
import { headers, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import {
  nowMs,
  processCpuSince,
  processPids,
  round,
  roundSummary,
  type Summary,
  sampleProcessCpu,
  summarize,
} from '../lib';
import type { Fleet } from './fleet';
import { sleep } from './support';

export interface FloorResult {
  consumers: number;
  payload_bytes: number;
  header_keys: string[];
  /** Floor messages measured (after 3 warm-up ones), each right after one of the agents' changes. */
  samples: number;
  publish_to_all_received_ms: Summary;
  publish_to_first_received_ms: Summary;
  publish_ack_ms: Summary;
  /** Each measured message's publish -> all received, in order (for the ratio's bootstrap interval). */
  by_message_ms: number[];
  /** CPU ms per floor message, its gap included: this process (the consumers, idle agents) and the servers. */
  cpu_ms_per_message: Record<string, number>;
}

const WARMUP = 3;

export class FloorSession {
  private readonly all: number[] = [];
  private readonly first: number[] = [];
  private readonly acks: number[] = [];
  private readonly cpu: Record<string, number> = {};
  // The servers' pids, found once: a scan of /proc per sample would cost ~1 ms of this process.
  private readonly pids = processPids();
  private sent = 0;

  private constructor(
    private readonly fleet: Fleet,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly stream: string,
    private readonly subject: string,
    private readonly cluster: string,
    private readonly consumers: number,
    private readonly gapMs: number,
    private readonly payload: { data: Uint8Array; headers: MsgHdrs | undefined },
    private readonly keys: string[],
  ) {}

  /** Creates the floor stream and its readers in the fleet's threads, and sends the warm-up messages. */
  static async open(
    fleet: Fleet,
    nc: NatsConnection,
    jsm: JetStreamManager,
    cluster: string,
    consumers: number,
    gapMs: number,
    payload: { data: Uint8Array; headers: MsgHdrs | undefined },
  ): Promise<FloorSession> {
    const stream = `BENCHFLOOR_${streamName(cluster)}_${consumers}`;
    const subject = `bench.${cluster}.floor${consumers}`;
    // Same stream settings as the revision stream (file storage, dedupe window, direct get).
    await jsm.streams.add(revisionStreamConfig(cluster, { name: stream, subject }));
    // The message's own headers (revision, cluster, hash, trace); the publish options set the Nats-* ones.
    const keys = payload.headers
      ? payload.headers.keys().filter((k) => !k.toLowerCase().startsWith('nats-'))
      : [];
    const s = new FloorSession(
      fleet,
      jetstream(nc),
      jsm,
      stream,
      subject,
      cluster,
      consumers,
      gapMs,
      payload,
      keys,
    );
    try {
      await fleet.floorStart(consumers, stream);
      for (let i = 0; i < WARMUP; i++) await s.send(); // the readers' first deliveries
    } catch (err) {
      await s.close();
      throw err;
    }
    return s;
  }

  /** One measured floor message: the gap, the publish, every reader's receipt. */
  async sample(): Promise<void> {
    const cpu0 = sampleProcessCpu(undefined, this.pids);
    const t = await this.send();
    for (const [k, ms] of Object.entries(processCpuSince(cpu0, this.pids)))
      this.cpu[k] = (this.cpu[k] ?? 0) + ms;
    this.all.push(t.all);
    this.first.push(t.first);
    this.acks.push(t.ack);
  }

  /** CPU ms the measured floor messages used so far, by process (to keep out of the agents' share). */
  cpuMs(): Record<string, number> {
    return { ...this.cpu };
  }

  private async send(): Promise<{ all: number; first: number; ack: number }> {
    await sleep(this.gapMs);
    const h = headers();
    for (const k of this.keys) for (const v of this.payload.headers!.values(k)) h.append(k, v);
    const t0 = nowMs();
    const ack = await this.js.publish(this.subject, this.payload.data, {
      headers: h,
      msgID: `${this.cluster}:floor:${this.sent++}`,
    });
    const tAck = nowMs();
    await this.fleet.floorWait(ack.seq, this.consumers, 30_000);
    const times = [...this.fleet.floorRecv.get(ack.seq)!.values()];
    this.fleet.floorRecv.delete(ack.seq);
    return { all: Math.max(...times) - t0, first: Math.min(...times) - t0, ack: tAck - t0 };
  }

  result(): FloorResult {
    const n = this.all.length;
    return {
      consumers: this.consumers,
      payload_bytes: this.payload.data.length,
      header_keys: this.keys,
      samples: n,
      publish_to_all_received_ms: roundSummary(summarize(this.all), 4),
      publish_to_first_received_ms: roundSummary(summarize(this.first), 4),
      publish_ack_ms: roundSummary(summarize(this.acks), 4),
      by_message_ms: this.all.map((x) => round(x, 3)),
      cpu_ms_per_message: Object.fromEntries(
        Object.entries(this.cpu).map(([k, ms]) => [k, round(ms / Math.max(1, n), 3)]),
      ),
    };
  }

  async close(): Promise<void> {
    await this.fleet.floorStop().catch(() => undefined);
    await this.jsm.streams.delete(this.stream).catch(() => undefined);
  }
}
