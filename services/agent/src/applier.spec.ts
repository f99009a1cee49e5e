import { type ApplyOutcome, MemoryMapBackend, Reconciler } from '@meshplane/dataplane';
import { type Change, type CommittedEvent, emptyState, evolveInPlace, refKey } from '@meshplane/domain';
import { encodeRevision, RevisionCodecError } from '@meshplane/messaging';
import { service, workload } from '../../../libs/dataplane/src/test-fixtures';
import { Restart, RevisionApplier } from './applier';
import { silentLogger } from './logger';
import { AgentObserver } from './metrics';
import { StatusReporter } from './status';

// The apply loop over an in-memory backend (no file, no NATS): which revisions reach the maps.

/** Encoded revisions 1..n, revision i adding service s<i> with one workload on n1. */
function revisions(n: number): Uint8Array[] {
  const state = emptyState();
  const out: Uint8Array[] = [];
  for (let revision = 1; revision <= n; revision++) {
    const changes: Change[] = [
      service(`s${revision}`, `127.100.9.${revision}`),
      workload(`w${revision}`, `127.0.1.${revision}`, 'n1', { labels: { app: `s${revision}` } }),
    ];
    const events = changes.map(
      (c, seq): CommittedEvent => ({
        ...c,
        prevVersion: state.resources.get(refKey(c))?.version ?? null,
        revision,
        seq,
      }),
    );
    for (const e of events) evolveInPlace(state, e);
    state.revision = revision;
    out.push(
      encodeRevision({
        revision,
        changeId: `00000000-0000-4000-8000-${String(revision).padStart(12, '0')}`,
        cluster: 'local',
        actor: 'spec',
        reason: 'spec',
        requestId: null,
        idempotencyKey: null,
        traceContext: null,
        restoredFromRevision: null,
        metadata: {},
        createdAt: new Date(0),
        eventCount: events.length,
        prevHash: '0'.repeat(64),
        hash: '0'.repeat(64),
        events,
      }),
    );
  }
  return out;
}

async function setup() {
  const backend = await MemoryMapBackend.open();
  const applied: number[] = [];
  const reconciler = new Reconciler(backend, {
    node: 'n1',
    cluster: 'local',
    onOutcome: (o: ApplyOutcome) => {
      if (o.ok && o.kind === 'apply') applied.push(o.revision);
    },
  });
  await reconciler.load();
  const applier = new RevisionApplier({
    node: 'n1',
    reconciler,
    reporter: new StatusReporter({ node: 'n1', cluster: 'local', agentVersion: 'spec', recentApplies: 10 }),
    observer: new AgentObserver('n1', 'local', { batchSpans: false }),
    log: silentLogger,
    cgroupIdOf: () => undefined,
    stopped: () => false,
  });
  applier.rebase(emptyState(), 0);
  const revs = revisions(8);
  /** Delivers revision `seq` as the stream's message, with `behind` more in the stream after it. */
  const deliver = (seq: number, behind: number) =>
    applier.enqueue(seq, revs[seq - 1]!, behind, () => undefined, 0);
  /** Delivers `bytes` as the stream's message `seq`. */
  const deliverBytes = (seq: number, bytes: Uint8Array) => applier.enqueue(seq, bytes, 0, () => undefined, 0);
  return { applier, reconciler, applied, deliver, deliverBytes, revs };
}

const garbage = new TextEncoder().encode('{"v":1,"revision":');

describe('RevisionApplier', () => {
  it('applies each revision on its own when it is not behind', async () => {
    const { applier, applied, deliver } = await setup();
    for (let seq = 1; seq <= 3; seq++) {
      deliver(seq, 0);
      await applier.applyPending();
    }
    expect(applied).toEqual([1, 2, 3]);
  });

  it('folds a backlog the stream already holds before applying: one diff, no intermediate state', async () => {
    const { applier, reconciler, applied, deliver } = await setup();
    deliver(1, 3);
    await applier.applyPending();
    deliver(2, 2);
    deliver(3, 1);
    await applier.applyPending();
    expect(applier.catchingUp).toBe(true);
    expect(applied).toEqual([]);
    expect(reconciler.meta?.appliedRevision ?? 0).toBe(0);
    deliver(4, 0);
    await applier.applyPending();
    expect(applier.catchingUp).toBe(false);
    expect(applied).toEqual([4]);
    expect(reconciler.meta?.appliedRevision).toBe(4);
  });

  it('a stream that keeps growing cannot starve the maps: the target is fixed when first seen', async () => {
    const { applier, applied, deliver } = await setup();
    deliver(1, 1); // target 2
    deliver(2, 4); // newer commits arrived meanwhile: still applied at 2
    await applier.applyPending();
    expect(applied).toEqual([2]);
    deliver(3, 3); // the next target: 6
    deliver(4, 2);
    await applier.applyPending();
    expect(applied).toEqual([2]);
    deliver(5, 5);
    deliver(6, 4);
    await applier.applyPending();
    expect(applied).toEqual([2, 6]);
  });

  it('a new consumer sets the target from what the stream holds, and drops the old one', async () => {
    const { applier, applied, deliver } = await setup();
    // A resume: the new consumer starts at 1 over a stream holding 5 revisions.
    applier.consumerStarted(1, 5);
    deliver(1, 0); // a message's own count never lowers the target
    deliver(2, 0);
    await applier.applyPending();
    expect(applied).toEqual([]);
    // That consumer died before revision 5; the next one finds nothing more (stream truncated,
    // say): what is folded is applied instead of waiting for revisions that will not come.
    applier.consumerStarted(3, 0);
    await applier.applyPending();
    expect(applied).toEqual([2]);
  });

  it('a rebase drops the catch-up target', async () => {
    const { applier, applied, deliver } = await setup();
    deliver(1, 7);
    await applier.applyPending();
    expect(applier.catchingUp).toBe(true);
    applier.rebase(emptyState(), 0);
    expect(applier.catchingUp).toBe(false);
    deliver(1, 0);
    await applier.applyPending();
    expect(applied).toEqual([1]);
  });

  it('a message that cannot be decoded fails the apply at its turn; the revisions before it are folded', async () => {
    const { applier, applied, deliver, deliverBytes } = await setup();
    deliver(1, 0);
    deliverBytes(2, garbage);
    await expect(applier.applyPending()).rejects.toThrow(RevisionCodecError);
    expect(applier.state.revision).toBe(1);
    expect(applied).toEqual([]);
  });

  it('a gap is a restart whatever the message holds', async () => {
    const { applier, deliver, deliverBytes } = await setup();
    deliver(1, 0);
    await applier.applyPending();
    deliverBytes(3, garbage);
    await expect(applier.applyPending()).rejects.toThrow(Restart);
    expect(applier.state.revision).toBe(1);
  });

  it('a redelivered revision is skipped unread, even one that would not decode', async () => {
    const { applier, applied, deliver, deliverBytes } = await setup();
    deliver(1, 0);
    await applier.applyPending();
    deliverBytes(1, garbage);
    deliver(2, 0);
    await applier.applyPending();
    expect(applied).toEqual([1, 2]);
  });

  it('a message whose revision is not its stream sequence is a restart', async () => {
    const { applier, deliverBytes, revs } = await setup();
    deliverBytes(1, revs[1]!); // revision 2's body at sequence 1
    await expect(applier.applyPending()).rejects.toThrow(/stream sequence 1 carries revision 2/);
  });
});
