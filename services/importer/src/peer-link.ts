import {
  federationActor,
  importChangeList,
  importIdempotencyKey,
  isEmptyImport,
  lastImport,
  refKey,
  type SkippedImport,
  skipMayHaveCleared,
  skippedOf,
  validateImport,
  withdrawChanges,
  withdrawHeader,
} from '@meshplane/domain';
import type { EventStore } from '@meshplane/event-store';
import {
  decodeExport,
  type ExportMessage,
  encodeLinkStatus,
  exportStreamName,
  exportSubject,
  type FederationLinkStatus,
  importStreamName,
  MAX_LINK_SKIPPED,
  readExportHeaders,
  type StreamTail,
  streamInfoOrUndefined,
  type TraceContext,
  tailStream,
} from '@meshplane/messaging';
import type { JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { FederationPeer } from './config';
import { appendImport } from './import-append';
import { errorFields, type Logger } from './logger';
import { readImported, readResources } from './resources';

export interface PeerLinkOptions {
  cluster: string;
  peer: FederationPeer;
  store: EventStore;
  nc: NatsConnection;
  js: JetStreamClient;
  /** This cluster's JetStream manager (the import stream's consumers). */
  jsm: JetStreamManager;
  /** JetStream manager of the peer's domain (its requests cross the leafnodes). */
  remote: JetStreamManager;
  kv: KV;
  cacheTtlMs: number;
  probeMs: number;
  log: Logger;
}

type Received = ExportMessage & { trace: TraceContext | undefined };

export const formatDuration = (ms: number) =>
  ms % 60_000 === 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;

/**
 * One peer: consumes its export messages from this cluster's import stream (in export-seq order),
 * appends each as an import change set, probes the peer's domain for the link state, withdraws
 * its imports after the cache TTL of being unreachable and re-imports on reconnect. All writes go
 * through one queue, so imports and withdrawals never interleave.
 */
export class PeerLink {
  private readonly name: string;
  private appliedSeq = 0;
  private appliedRevision = 0;
  private lastImportRevision: number | null = null;
  private withdrawn = false;
  private withdrawRevision = 0;
  private state: FederationLinkStatus['state'] = 'unknown';
  private since = new Date();
  private peerSeq = 0;
  private lastError: string | null = null;
  /** What the last import of the peer's view left out (re-planned when a clash may be gone). */
  private skipped: SkippedImport[] = [];
  /** The message of `appliedSeq` (what a re-import after a withdrawal applies again). */
  private lastApplied: Received | undefined;
  private pending: Received[] = [];
  private queue: Promise<void> = Promise.resolve();
  private tail: StreamTail | undefined;
  private reading: Promise<void> = Promise.resolve();
  private probeTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly o: PeerLinkOptions) {
    this.name = o.peer.name;
  }

  /** Resumes from the log: the last imported export seq of this peer, and whether it was withdrawn. */
  async start(): Promise<void> {
    const actor = federationActor(this.name);
    const { rows: last } = await this.o.store.pool.query<{
      revision: string;
      metadata: Record<string, unknown>;
    }>('SELECT revision, metadata FROM change_sets WHERE actor = $1 ORDER BY revision DESC LIMIT 1', [actor]);
    const { rows: imported } = await this.o.store.pool.query<{
      revision: string;
      metadata: Record<string, unknown>;
    }>(
      `SELECT revision, metadata FROM change_sets WHERE actor = $1
         AND metadata->'federation'->>'seq' IS NOT NULL ORDER BY revision DESC LIMIT 1`,
      [actor],
    );
    const imp = imported[0] ? lastImport(imported[0].metadata) : undefined;
    this.appliedSeq = imp?.seq ?? 0;
    this.appliedRevision = imp?.revision ?? 0;
    this.lastImportRevision = imported[0] ? Number(imported[0].revision) : null;
    this.skipped = imported[0] ? skippedOf(imported[0].metadata) : [];
    if (last[0] && lastImport(last[0].metadata)?.withdrawn) {
      this.withdrawn = true;
      this.skipped = [];
      this.withdrawRevision = Number(last[0].revision);
    }
    this.o.log.info('peer link starting', {
      peer: this.name,
      lastImportedSeq: this.appliedSeq,
      lastImportedRevision: this.appliedRevision,
      withdrawn: this.withdrawn,
    });
    await this.consume();
    void this.probe();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.probeTimer);
    this.tail?.stop();
    await this.reading;
    await this.queue;
  }

  status(): FederationLinkStatus {
    return {
      cluster: this.o.cluster,
      peer: this.name,
      state: this.state,
      since: this.since.toISOString(),
      withdrawn: this.withdrawn,
      lastImportedRevision: this.appliedRevision,
      lastImportedSeq: this.appliedSeq,
      lastImportRevision: this.lastImportRevision,
      peerSeq: this.peerSeq,
      lag: Math.max(0, this.peerSeq - this.appliedSeq),
      lastError: this.lastError,
      skipped: this.skipped.slice(0, MAX_LINK_SKIPPED),
      skippedCount: this.skipped.length,
      updatedAt: new Date().toISOString(),
    };
  }

  /**
   * This peer's subject of the import stream, in order from its first message; a consumer that
   * ended early (stream-tail.ts) is reopened after the last message seen. The first one is opened
   * before start() returns, so that a missing stream fails the start.
   */
  private async consume(): Promise<void> {
    let next = 1;
    const open = () =>
      tailStream(this.o.nc, this.o.js, this.o.jsm, {
        stream: importStreamName(this.o.cluster),
        startSeq: next,
        filterSubject: exportSubject(this.name),
      });
    this.tail = await open();
    this.reading = (async () => {
      let pause = 0;
      while (!this.stopped) {
        try {
          for await (const m of this.tail!) {
            next = m.seq + 1;
            pause = 0;
            this.handle(m);
          }
        } catch (err) {
          this.o.log.warn('import consumer ended; reopening', {
            peer: this.name,
            from: next,
            ...errorFields(err),
          });
        }
        while (!this.stopped) {
          await new Promise((r) => setTimeout(r, pause));
          pause = Math.min(5_000, Math.max(100, pause * 2));
          try {
            this.tail = await open();
            break;
          } catch (err) {
            this.o.log.warn('import consumer not ready; retrying', { peer: this.name, ...errorFields(err) });
          }
        }
        if (this.stopped) this.tail?.stop();
      }
    })();
  }

  private handle(m: JsMsg): void {
    try {
      const body = decodeExport(m.data);
      const h = readExportHeaders(m.headers);
      if (body.cluster !== this.name) throw new Error(`message from ${body.cluster} on ${m.subject}`);
      this.receive({ ...body, trace: h.trace });
    } catch (err) {
      this.o.log.error('undecodable export message skipped', {
        peer: this.name,
        seq: m.seq,
        ...errorFields(err),
      });
    }
  }

  private receive(m: Received): void {
    if (m.seq === this.appliedSeq) this.lastApplied = m;
    this.peerSeq = Math.max(this.peerSeq, m.seq);
    if (m.seq > this.appliedSeq && !this.pending.some((p) => p.seq === m.seq)) this.pending.push(m);
    this.enqueue(() => this.drain());
  }

  private enqueue(task: () => Promise<void>): void {
    this.queue = this.queue.then(task).catch((err) => {
      this.lastError = (err as Error).message;
      this.o.log.error('import failed; will retry', { peer: this.name, ...errorFields(err) });
      // Retry on the next probe tick (the pending messages stay queued).
    });
  }

  /** Applies pending messages in export-seq order; after a withdrawal, only once the peer is back. */
  private async drain(): Promise<void> {
    while (!this.stopped) {
      this.pending.sort((a, b) => a.seq - b.seq);
      while (this.pending[0] && this.pending[0].seq <= this.appliedSeq) this.pending.shift();
      const next = this.pending[0];
      if (this.withdrawn) {
        if (this.state !== 'connected') return;
        // Back after a withdrawal: the next export (a whole view) restores everything by itself;
        // without one, re-apply the last view imported before the withdrawal.
        if (!next && this.lastApplied) await this.apply(this.lastApplied, 'reimport');
        this.withdrawn = false;
        continue;
      }
      if (!next) {
        if (this.lastApplied && (await this.skipsMayHaveCleared()))
          await this.apply(this.lastApplied, 'reapply');
        return;
      }
      await this.apply(next, 'import');
      this.pending.shift();
    }
  }

  /**
   * Imports view `m` minus what clashes (see appendImport). `reimport`: the last view again after
   * a withdrawal; `reapply`: the last view again because a skipped resource may import now.
   */
  private async apply(m: Received, mode: 'import' | 'reimport' | 'reapply'): Promise<void> {
    if (mode === 'import' && this.appliedSeq > 0 && m.seq !== this.appliedSeq + 1) {
      // Only when the import stream's retention dropped messages: the view is whole, so apply it.
      this.o.log.warn('export sequence gap', { peer: this.name, from: this.appliedSeq, to: m.seq });
    }
    const key = importIdempotencyKey(this.name, m.seq);
    const { result, skipped } = await appendImport({
      store: this.o.store,
      peer: this.name,
      view: m,
      importedState: () => readImported(this.o.store, this.name),
      // A re-apply tries the whole view: the lock decides what still clashes.
      guess: mode === 'reapply' ? [] : this.skipped,
      ...(mode === 'import' ? {} : { again: mode }),
      idempotencyKey:
        mode === 'reimport'
          ? `${key}:after:${this.withdrawRevision}`
          : mode === 'reapply'
            ? `${key}:reapply:${this.lastImportRevision ?? 0}`
            : key,
      traceContext: m.trace?.traceparent ?? null,
    });
    if (result && result.status !== 'unchanged') this.lastImportRevision = result.changeSet.revision;
    if (result || mode !== 'reapply') {
      this.o.log.info('imported', {
        peer: this.name,
        exportSeq: m.seq,
        peerRevision: m.revision,
        revision: result && result.status !== 'unchanged' ? result.changeSet.revision : null,
        status: result?.status ?? 'unchanged',
        mode,
        skipped: skipped.length,
      });
    }
    this.noteSkipped(skipped);
    if (m.seq >= this.appliedSeq) {
      this.appliedSeq = m.seq;
      this.appliedRevision = m.revision;
      this.lastApplied = m;
    }
    this.lastError = null;
    await this.writeStatus();
  }

  private noteSkipped(skipped: SkippedImport[]): void {
    const keys = (l: SkippedImport[]) => l.map((s) => `${refKey(s)} ${s.message}`).join('\n');
    if (keys(skipped) === keys(this.skipped)) return;
    if (skipped.length > 0)
      this.o.log.warn('import skipped resources', {
        peer: this.name,
        skipped: skipped.slice(0, MAX_LINK_SKIPPED).map((s) => s.message),
        count: skipped.length,
      });
    else this.o.log.info('nothing skipped any more', { peer: this.name, was: this.skipped.length });
    this.skipped = skipped;
  }

  /**
   * Whether a skipped Service's VIP may be free now (its holder deleted, moved or part of its
   * global service): one read of the holders, so a persisting clash costs no append attempt.
   */
  private async skipsMayHaveCleared(): Promise<boolean> {
    // Skips that would clear if their holder were gone (not Workloads, not clashes inside the view).
    const candidates = this.skipped.filter((s) => s.holder && skipMayHaveCleared(s, undefined));
    if (candidates.length === 0) return false;
    const now = await readResources(
      this.o.store,
      candidates.map((s) => s.holder!),
    );
    return candidates.some((s) => skipMayHaveCleared(s, now.get(refKey(s.holder!))));
  }

  private async withdraw(): Promise<void> {
    if (this.withdrawn || this.state !== 'disconnected') return;
    const why = `peer ${this.name} unreachable for ${formatDuration(this.o.cacheTtlMs)}`;
    const ic = withdrawChanges(await readImported(this.o.store, this.name), this.name);
    let revision = (await this.o.store.reader.head()).revision;
    if (!isEmptyImport(ic)) {
      const h = withdrawHeader(this.name, why);
      const res = await this.o.store.append(importChangeList(ic), {
        ...h,
        validate: (view, changes) => validateImport(view, changes, this.name),
      });
      if (res.status !== 'unchanged') revision = res.changeSet.revision;
    }
    this.withdrawn = true;
    this.withdrawRevision = revision;
    // Nothing of the peer is imported now; the re-import plans its view afresh.
    this.skipped = [];
    this.o.log.warn('imports withdrawn', { peer: this.name, reason: why, revision });
    await this.writeStatus();
  }

  /** Asks the peer's domain for its export stream: an answer (even "no stream yet") means connected. */
  private async probe(): Promise<void> {
    if (this.stopped) return;
    let next: FederationLinkStatus['state'];
    let error: string | null = null;
    try {
      const info = await streamInfoOrUndefined(this.o.remote, exportStreamName(this.name));
      this.peerSeq = Math.max(this.peerSeq, info?.state.last_seq ?? 0);
      next = 'connected';
    } catch (err) {
      next = 'disconnected';
      error = (err as Error).message;
    }
    if (this.stopped) return;
    if (next !== this.state) {
      this.o.log[next === 'connected' ? 'info' : 'warn'](`peer ${next}`, {
        peer: this.name,
        ...(error ? { error } : {}),
      });
      this.state = next;
      this.since = new Date();
    }
    if (
      next === 'disconnected' &&
      Date.now() - this.since.getTime() >= this.o.cacheTtlMs &&
      !this.withdrawn
    ) {
      this.enqueue(() => this.withdraw());
    }
    // A reconnect re-imports after a withdrawal; a failed import is retried here too.
    this.enqueue(() => this.drain());
    this.enqueue(() => this.writeStatus());
    this.probeTimer = setTimeout(() => void this.probe(), this.o.probeMs);
  }

  private async writeStatus(): Promise<void> {
    try {
      await this.o.kv.put(this.name, encodeLinkStatus(this.status()));
    } catch (err) {
      this.o.log.warn('link status not written', { peer: this.name, ...errorFields(err) });
    }
  }
}
