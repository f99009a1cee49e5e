import {
  emptyState,
  federationActor,
  importChangeList,
  importChanges,
  importHeader,
  importIdempotencyKey,
  isEmptyImport,
  lastImport,
  type MeshState,
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
  readExportHeaders,
  streamInfoOrUndefined,
  type TraceContext,
} from '@meshplane/messaging';
import type { ConsumerMessages, JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { FederationPeer } from './config';
import { errorFields, type Logger } from './logger';

export interface PeerLinkOptions {
  cluster: string;
  peer: FederationPeer;
  store: EventStore;
  js: JetStreamClient;
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
  /** The message of `appliedSeq` (what a re-import after a withdrawal applies again). */
  private lastApplied: Received | undefined;
  private pending: Received[] = [];
  private queue: Promise<void> = Promise.resolve();
  private messages: ConsumerMessages | undefined;
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
    if (last[0] && lastImport(last[0].metadata)?.withdrawn) {
      this.withdrawn = true;
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
    await this.messages?.close().catch(() => undefined);
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
      updatedAt: new Date().toISOString(),
    };
  }

  /** An ordered consumer over this peer's subject of the import stream, from its first message. */
  private async consume(): Promise<void> {
    const consumer = await this.o.js.consumers.get(importStreamName(this.o.cluster), {
      // One subject as a string: an array needs nats-server 2.10 (this machine has 2.9).
      filter_subjects: exportSubject(this.name),
    });
    const messages = await consumer.consume();
    this.messages = messages;
    void (async () => {
      for await (const m of messages) {
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
    })();
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
        if (!next && this.lastApplied) await this.apply(this.lastApplied, true);
        this.withdrawn = false;
        continue;
      }
      if (!next) return;
      await this.apply(next, false);
      this.pending.shift();
    }
  }

  /** The part of the current state that this peer owns (what importChanges compares against). */
  private async importedState(): Promise<MeshState> {
    const rows = await this.o.store.db
      .selectFrom('resources')
      .selectAll()
      .where('origin', '=', this.name)
      .execute();
    const state = emptyState();
    for (const r of rows) {
      const spec = typeof r.spec === 'string' ? JSON.parse(r.spec) : r.spec;
      state.resources.set(`${r.kind}/${r.namespace}/${r.name}`, {
        kind: r.kind,
        namespace: r.namespace,
        name: r.name,
        spec,
        version: Number(r.version),
        origin: r.origin ?? undefined,
      });
    }
    return state;
  }

  private async apply(m: Received, reimport: boolean): Promise<void> {
    const ic = importChanges(await this.importedState(), this.name, m.resources);
    if (!reimport && this.appliedSeq > 0 && m.seq !== this.appliedSeq + 1) {
      // Only when the import stream's retention dropped messages: the view is whole, so apply it.
      this.o.log.warn('export sequence gap', { peer: this.name, from: this.appliedSeq, to: m.seq });
    }
    if (!isEmptyImport(ic)) {
      const h = importHeader(this.name, m.revision, m.seq);
      const key = importIdempotencyKey(this.name, m.seq);
      const res = await this.o.store.append(importChangeList(ic), {
        actor: h.actor,
        reason: reimport ? `${h.reason}, re-imported after withdrawal` : h.reason,
        metadata: reimport ? { federation: { ...h.metadata.federation, reimport: true } } : h.metadata,
        idempotencyKey: reimport ? `${key}:after:${this.withdrawRevision}` : key,
        traceContext: m.trace?.traceparent ?? null,
        validate: (view, changes) => validateImport(view, changes, this.name),
      });
      if (res.status !== 'unchanged') this.lastImportRevision = res.changeSet.revision;
      this.o.log.info('imported', {
        peer: this.name,
        exportSeq: m.seq,
        peerRevision: m.revision,
        revision: res.status === 'unchanged' ? null : res.changeSet.revision,
        status: res.status,
        reimport,
      });
    }
    if (m.seq >= this.appliedSeq) {
      this.appliedSeq = m.seq;
      this.appliedRevision = m.revision;
      this.lastApplied = m;
    }
    this.lastError = null;
    await this.writeStatus();
  }

  private async withdraw(): Promise<void> {
    if (this.withdrawn || this.state !== 'disconnected') return;
    const why = `peer ${this.name} unreachable for ${formatDuration(this.o.cacheTtlMs)}`;
    const ic = withdrawChanges(await this.importedState(), this.name);
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
