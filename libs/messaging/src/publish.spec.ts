import type { ChangeSet } from '@meshplane/event-store';
import type { JetStreamClient, JetStreamPublishOptions, PubAck } from '@nats-io/jetstream';
import { publishRevision, RevisionTooLargeError } from './publish';
import { decodeRevision } from './revision-codec';

const cs = (revision: number, over: Partial<ChangeSet> = {}): ChangeSet => ({
  revision,
  changeId: 'c',
  cluster: 'local',
  actor: 'a',
  reason: 'r',
  requestId: null,
  idempotencyKey: null,
  traceContext: null,
  restoredFromRevision: null,
  metadata: {},
  createdAt: new Date('2026-01-02T03:04:05.678Z'),
  eventCount: 0,
  prevHash: '0'.repeat(64),
  hash: '1'.repeat(64),
  events: [],
  ...over,
});

/** A JetStream client that records publishes and answers with `ack` (no server needed). */
function stubJs(ack: (seq: number) => Partial<PubAck>) {
  const calls: Array<{ subject: string; data: Uint8Array; opts: Partial<JetStreamPublishOptions> }> = [];
  const js = {
    publish: async (subject: string, data: Uint8Array, opts: Partial<JetStreamPublishOptions>) => {
      calls.push({ subject, data, opts });
      return { stream: 'MESH_LOCAL', duplicate: false, ...ack(Number(opts.msgID?.split(':')[1])) } as PubAck;
    },
  } as unknown as JetStreamClient;
  return { js, calls };
}

describe('publishRevision', () => {
  it('sends the dedupe id, the sequence guard and the stream guard', async () => {
    const { js, calls } = stubJs((seq) => ({ seq }));
    await publishRevision(js, 'local', cs(7));
    expect(calls).toHaveLength(1);
    const { subject, data, opts } = calls[0]!;
    expect(subject).toBe('mesh.local.revisions');
    expect(opts.msgID).toBe('local:7');
    expect(opts.expect).toEqual({ lastSequence: 6, streamName: 'MESH_LOCAL' });
    expect(opts.headers?.get('Mesh-Revision')).toBe('7');
    expect(decodeRevision(data)).toEqual(cs(7));
  });

  it('rejects an ack at another sequence (a stream not written by these rules)', async () => {
    const { js } = stubJs(() => ({ seq: 3, duplicate: true }));
    await expect(publishRevision(js, 'local', cs(7))).rejects.toThrow(
      'stored revision 7 at sequence 3 (duplicate)',
    );
  });

  it('refuses a message larger than max_payload before sending it', async () => {
    const { js, calls } = stubJs((seq) => ({ seq }));
    const big = cs(2, { metadata: { blob: 'x'.repeat(2000) } });
    const err = await publishRevision(js, 'local', big, { maxPayload: 500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RevisionTooLargeError);
    expect((err as RevisionTooLargeError).message).toMatch(/revision 2 encodes to \d+ bytes, above .* 500/);
    expect(calls).toHaveLength(0);
  });

  it('rejects revisions that cannot be stream sequences', async () => {
    const { js } = stubJs((seq) => ({ seq }));
    await expect(publishRevision(js, 'local', cs(0))).rejects.toThrow(/positive integer/);
  });
});
