import {
  canonicalJson,
  ExportWatch,
  emptyState,
  evolveInPlace,
  exportedView,
  type MeshState,
} from '@meshplane/domain';
import type { ChangeSet, LogReader, SnapshotRepository } from '@meshplane/event-store';
import {
  changeSetTraceContext,
  decodeExport,
  exportStreamName,
  provisionExportStream,
  publishExport,
  streamInfoOrUndefined,
} from '@meshplane/messaging';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from './logger';

export interface ExportPublisherOptions {
  store: Pick<LogReader, 'head' | 'readRevisions'>;
  /** Where to start a state without replaying the whole log; optional. */
  snapshots?: Pick<SnapshotRepository, 'latestAtOrBelow'>;
  js: JetStreamClient;
  jsm: JetStreamManager;
  cluster: string;
  log: Logger;
  /** Further behind than this, jump to the head state (one message) instead of replaying each revision. */
  jumpAfter?: number;
}

/**
 * Publishes the cluster's exported view (federation) to its export stream: the whole view after
 * each revision that changed it, with a dense export sequence (stream sequence == export seq), so
 * that importers can prove they saw every change. Runs in the relay's leader loop after the
 * revisions are published; its checkpoint is the export stream's last message (its revision and
 * view), so a new leader resumes exactly where the last one stopped.
 */
export class ExportPublisher {
  private synced = false;
  private seq = 0;
  /** Revision `state` is at, and the last view published (canonical JSON). */
  private state: MeshState = emptyState();
  private lastView = '[]';
  private streamExists = false;
  /** Tells the revisions that may change the view from the rest (which skip the O(mesh) view). */
  private readonly watch: ExportWatch;

  constructor(private readonly opts: ExportPublisherOptions) {
    this.watch = new ExportWatch(opts.cluster);
  }

  /** After any error: re-read the stream's tail before publishing again. */
  invalidate(): void {
    this.synced = false;
  }

  /**
   * Publishes the views of revisions up to `upTo` (default: the log's head). `published`: change
   * sets at hand (those the relay just published, in order), folded without reading the log.
   */
  async catchUp(
    stopped: () => boolean = () => false,
    upTo?: number,
    published: readonly ChangeSet[] = [],
  ): Promise<void> {
    if (!this.synced) await this.sync();
    const head = upTo ?? (await this.opts.store.head()).revision;
    if (head <= this.state.revision) return;
    if (head - this.state.revision > (this.opts.jumpAfter ?? 1000)) {
      this.setState(await this.loadState(head));
      await this.publishIfChanged(head, undefined);
      return;
    }
    for await (const cs of revisionsFrom(this.state.revision + 1, head, published, this.opts.store)) {
      if (stopped()) return;
      let changed = false;
      for (const e of cs.events) changed = this.watch.evolve(this.state, e) || changed;
      this.state.revision = cs.revision;
      if (changed) await this.publishIfChanged(cs.revision, cs);
    }
  }

  private async publishIfChanged(revision: number, cs: ChangeSet | undefined): Promise<void> {
    const { cluster, js, log } = this.opts;
    const resources = exportedView(this.state, cluster);
    const view = canonicalJson(resources);
    if (view === this.lastView) return;
    const seq = this.seq + 1;
    if (!this.streamExists) {
      await provisionExportStream(this.opts.jsm, cluster);
      this.streamExists = true;
    }
    const trace = cs ? changeSetTraceContext(cs) : undefined;
    await publishExport(js, { cluster, seq, revision, resources }, trace ? { trace } : {});
    this.seq = seq;
    this.lastView = view;
    log.info('export published', { exportSeq: seq, revision, resources: resources.length });
  }

  private async sync(): Promise<void> {
    const { jsm, cluster } = this.opts;
    // Created on the first export only: a cluster that exports nothing gets no stream.
    const info = await streamInfoOrUndefined(jsm, exportStreamName(cluster));
    this.streamExists = info !== undefined;
    const last = info?.state.last_seq ?? 0;
    let revision = 0;
    let view = '[]';
    if (last > 0) {
      const msg = await jsm.streams.getMessage(exportStreamName(cluster), { seq: last });
      if (!msg) throw new Error(`export stream ${exportStreamName(cluster)} lost its last message ${last}`);
      const m = decodeExport(msg.data);
      revision = m.revision;
      view = canonicalJson(m.resources);
    }
    this.seq = last;
    this.lastView = view;
    this.setState(await this.loadState(revision));
    this.synced = true;
    this.opts.log.info('export stream synced', { exportSeq: last, revision });
  }

  private setState(state: MeshState): void {
    this.state = state;
    this.watch.reset(state);
  }

  /** The state at `revision`: the nearest snapshot, then replay. */
  private async loadState(revision: number): Promise<MeshState> {
    const state =
      (revision > 0 ? await this.opts.snapshots?.latestAtOrBelow(revision) : undefined) ?? emptyState();
    if (state.revision < revision) {
      for await (const cs of this.opts.store.readRevisions(state.revision + 1, { to: revision })) {
        for (const e of cs.events) evolveInPlace(state, e);
        state.revision = cs.revision;
      }
    }
    return state;
  }
}

/**
 * Revisions `from`..`to` in order: those `atHand` holds, contiguous from `from`, then the rest
 * from the log (everything from the log when `atHand` does not start at `from`).
 */
export async function* revisionsFrom(
  from: number,
  to: number,
  atHand: readonly ChangeSet[],
  log: Pick<LogReader, 'readRevisions'>,
): AsyncGenerator<ChangeSet> {
  let next = from;
  for (const cs of atHand) {
    if (cs.revision < next) continue;
    if (cs.revision !== next || next > to) break;
    yield cs;
    next++;
  }
  if (next <= to) yield* log.readRevisions(next, { to });
}
