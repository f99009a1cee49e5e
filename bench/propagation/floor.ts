/**
 * The physical floor of the fan-out, measured in the same run as the agents: a plain JetStream
 * publish of a revision-sized message to as many stream readers as there are agents.
 */
import { revisionStreamConfig, streamName } from '@meshplane/messaging';
import { type JetStreamManager, jetstream } from '@nats-io/jetstream';
import { headers, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import {
  nowMs,
  processCpuSince,
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
  publish_to_all_received_ms: Summary;
  publish_to_first_received_ms: Summary;
  publish_ack_ms: Summary;
  /** CPU ms per floor message: this process (the consumers, idle agents) and the servers. */
  cpu_ms_per_message: Record<string, number>;
}

export async function floorRun(
  fleet: Fleet,
  nc: NatsConnection,
  jsm: JetStreamManager,
  cluster: string,
  consumers: number,
  samples: number,
  gapMs: number,
  payload: { data: Uint8Array; headers: MsgHdrs | undefined },
): Promise<FloorResult> {
  const stream = `BENCHFLOOR_${streamName(cluster)}_${consumers}`;
  const subject = `bench.${cluster}.floor${consumers}`;
  // Same stream settings as the revision stream (file storage, dedupe window, direct get).
  await jsm.streams.add(revisionStreamConfig(cluster, { name: stream, subject }));
  try {
    await fleet.floorStart(consumers, stream);
    const js = jetstream(nc);
    // The message's own headers (revision, cluster, hash, trace); the publish options set the Nats-* ones.
    const keys = payload.headers
      ? payload.headers.keys().filter((k) => !k.toLowerCase().startsWith('nats-'))
      : [];
    const hdrs = () => {
      const h = headers();
      for (const k of keys) for (const v of payload.headers!.values(k)) h.append(k, v);
      return h;
    };
    const all: number[] = [];
    const first: number[] = [];
    const acks: number[] = [];
    let cpu0 = sampleProcessCpu();
    for (let i = 0; i < samples + 3; i++) {
      if (i === 3) cpu0 = sampleProcessCpu();
      await sleep(gapMs);
      const t0 = nowMs();
      const ack = await js.publish(subject, payload.data, {
        headers: hdrs(),
        msgID: `${cluster}:floor:${i}`,
      });
      const tAck = nowMs();
      await fleet.floorWait(ack.seq, consumers, 30_000);
      if (i < 3) continue; // warm-up: the consumers' first pulls
      const times = [...fleet.floorRecv.get(ack.seq)!.values()];
      all.push(Math.max(...times) - t0);
      first.push(Math.min(...times) - t0);
      acks.push(tAck - t0);
    }
    const cpu = processCpuSince(cpu0);
    return {
      consumers,
      payload_bytes: payload.data.length,
      header_keys: keys,
      publish_to_all_received_ms: roundSummary(summarize(all), 4),
      publish_to_first_received_ms: roundSummary(summarize(first), 4),
      publish_ack_ms: roundSummary(summarize(acks), 4),
      cpu_ms_per_message: Object.fromEntries(
        Object.entries(cpu).map(([k, ms]) => [k, round(ms / samples, 3)]),
      ),
    };
  } finally {
    await fleet.floorStop().catch(() => undefined);
    await jsm.streams.delete(stream).catch(() => undefined);
  }
}
