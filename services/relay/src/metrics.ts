export type RelayRole = 'starting' | 'standby' | 'leader' | 'stopped';

/**
 * In-process relay metrics, plain getters for a later /metrics endpoint. Only the leader knows the
 * stream's tail for sure; a standby keeps the last values it saw.
 */
export class RelayMetrics {
  private _role: RelayRole = 'starting';
  private _lastPublished = 0;
  private _head = 0;
  private _published = 0;
  private _duplicates = 0;
  private _resyncs = 0;
  private _leaderSince: Date | null = null;
  private _lastPublishedAt: Date | null = null;
  private _blockedReason: string | null = null;
  private _leaderships = 0;

  get role(): RelayRole {
    return this._role;
  }
  get isLeader(): boolean {
    return this._role === 'leader';
  }
  /** Last revision known to be in the stream (its last sequence). */
  get lastPublishedRevision(): number {
    return this._lastPublished;
  }
  /** Latest head revision seen in the log (NOTIFY payloads and head reads). */
  get headRevision(): number {
    return this._head;
  }
  /** Committed but not yet published revisions. */
  get lagRevisions(): number {
    return Math.max(0, this._head - this._lastPublished);
  }
  /** Messages this process stored (duplicates excluded). */
  get publishedTotal(): number {
    return this._published;
  }
  /** Publishes the stream answered as duplicates (a retry of something already stored). */
  get duplicatesTotal(): number {
    return this._duplicates;
  }
  /** Times the checkpoint was re-read after the stream moved under us (10071) or an error. */
  get resyncsTotal(): number {
    return this._resyncs;
  }
  get leadershipsTotal(): number {
    return this._leaderships;
  }
  get leaderSince(): Date | null {
    return this._leaderSince;
  }
  get lastPublishedAt(): Date | null {
    return this._lastPublishedAt;
  }
  /** Set while the leader refuses to publish (stream ahead of or diverged from the log). */
  get blockedReason(): string | null {
    return this._blockedReason;
  }

  snapshot(): Record<string, unknown> {
    return {
      role: this.role,
      lastPublishedRevision: this.lastPublishedRevision,
      headRevision: this.headRevision,
      lagRevisions: this.lagRevisions,
      publishedTotal: this.publishedTotal,
      duplicatesTotal: this.duplicatesTotal,
      resyncsTotal: this.resyncsTotal,
      leadershipsTotal: this.leadershipsTotal,
      leaderSince: this.leaderSince?.toISOString() ?? null,
      lastPublishedAt: this.lastPublishedAt?.toISOString() ?? null,
      blockedReason: this.blockedReason,
    };
  }

  // ---- updates, called by the relay only

  setRole(role: RelayRole): void {
    if (role === 'leader' && this._role !== 'leader') {
      this._leaderSince = new Date();
      this._leaderships++;
    }
    if (role !== 'leader') this._leaderSince = null;
    this._role = role;
  }
  observeHead(revision: number): void {
    if (Number.isSafeInteger(revision) && revision > this._head) this._head = revision;
  }
  /** The head as read from the log; may move back after a restore, unlike NOTIFY observations. */
  setHead(revision: number): void {
    this._head = revision;
  }
  setCheckpoint(revision: number): void {
    this._lastPublished = revision;
  }
  published(revision: number, duplicate: boolean): void {
    this._lastPublished = Math.max(this._lastPublished, revision);
    this._lastPublishedAt = new Date();
    if (duplicate) this._duplicates++;
    else this._published++;
  }
  resynced(): void {
    this._resyncs++;
  }
  setBlocked(reason: string | null): void {
    this._blockedReason = reason;
  }
}
