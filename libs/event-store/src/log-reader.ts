import { type MeshState, NotFoundError, type ResourceRef } from '@meshplane/domain';
import { type Kysely, sql } from 'kysely';
import { type ChangeSetRow, type EventRow, stripHeader, toChangeSet, toEvent } from './rows';
import type { LogDatabase } from './schema';
import type { ChangeSet, ChangeSetFilter, ChangeSetHeader, Head, ResourceHistoryEntry } from './types';

const CHANGE_SET_COLUMNS = [
  'revision',
  'change_id',
  'cluster',
  'actor',
  'reason',
  'request_id',
  'idempotency_key',
  'idempotency_fingerprint',
  'trace_context',
  'restored_from_revision',
  'metadata',
  'event_count',
  'created_at',
  'prev_hash',
  'hash',
] as const;

const EVENT_COLUMNS = [
  'revision',
  'seq',
  'kind',
  'namespace',
  'name',
  'op',
  'spec',
  'prev_version',
  'origin',
] as const;

/** Reads of the log: revisions, ranges, history, filters. No writes. */
export class LogReader {
  constructor(private readonly db: Kysely<LogDatabase>) {}

  async head(): Promise<Head> {
    const row = await this.db.selectFrom('mesh_head').select(['revision', 'hash']).executeTakeFirstOrThrow();
    return { revision: row.revision, hash: row.hash };
  }

  async changeSetRows(from: number, to: number): Promise<ChangeSetRow[]> {
    return (await this.db
      .selectFrom('change_sets')
      .select(CHANGE_SET_COLUMNS)
      .where('revision', '>=', from)
      .where('revision', '<=', to)
      .orderBy('revision')
      .execute()) as ChangeSetRow[];
  }

  async eventRows(fromExclusive: number, toInclusive: number): Promise<EventRow[]> {
    return (await this.db
      .selectFrom('events')
      .select(EVENT_COLUMNS)
      .where('revision', '>', fromExclusive)
      .where('revision', '<=', toInclusive)
      .orderBy('revision')
      .orderBy('seq')
      .execute()) as EventRow[];
  }

  async getChangeSet(revision: number): Promise<ChangeSet | undefined> {
    const [row] = await this.changeSetRows(revision, revision);
    if (!row) return undefined;
    const events = await this.eventRows(revision - 1, revision);
    return toChangeSet(row, events.map(toEvent));
  }

  /** Change sets with their events, in revision order, `batchSize` revisions per query pair. */
  async *readRevisions(
    from: number,
    opts: { to?: number; batchSize?: number } = {},
  ): AsyncGenerator<ChangeSet> {
    const batch = Math.max(1, opts.batchSize ?? 500);
    const to = opts.to ?? (await this.head()).revision;
    for (let lo = Math.max(1, from); lo <= to; lo += batch) {
      const hi = Math.min(to, lo + batch - 1);
      const [rows, events] = await Promise.all([this.changeSetRows(lo, hi), this.eventRows(lo - 1, hi)]);
      let i = 0;
      for (const row of rows) {
        const mine = [];
        while (i < events.length && events[i]!.revision === row.revision) mine.push(toEvent(events[i++]!));
        yield toChangeSet(row, mine);
      }
    }
  }

  async listChangeSets(filter: ChangeSetFilter = {}): Promise<ChangeSetHeader[]> {
    let q = this.db.selectFrom('change_sets').select(CHANGE_SET_COLUMNS);
    if (filter.actor) q = q.where('actor', '=', filter.actor);
    if (filter.since) q = q.where('created_at', '>=', filter.since);
    if (filter.until) q = q.where('created_at', '<=', filter.until);
    if (filter.fromRevision !== undefined) q = q.where('revision', '>=', filter.fromRevision);
    if (filter.kind || filter.namespace || filter.name) {
      q = q.where('revision', 'in', (eb) => {
        let sub = eb.selectFrom('events').select('events.revision');
        if (filter.kind) sub = sub.where('events.kind', '=', filter.kind);
        if (filter.namespace) sub = sub.where('events.namespace', '=', filter.namespace);
        if (filter.name) sub = sub.where('events.name', '=', filter.name);
        return sub;
      });
    }
    const limit = Math.min(Math.max(1, filter.limit ?? 100), 1000);
    const rows = (await q.orderBy('revision').limit(limit).execute()) as ChangeSetRow[];
    return rows.map(stripHeader);
  }

  async resourceHistory(ref: ResourceRef): Promise<ResourceHistoryEntry[]> {
    const rows = await this.db
      .selectFrom('events as e')
      .innerJoin('change_sets as c', 'c.revision', 'e.revision')
      .select([
        'e.revision',
        'e.seq',
        'e.kind',
        'e.namespace',
        'e.name',
        'e.op',
        'e.spec',
        'e.prev_version',
        'e.origin',
      ])
      .select(['c.actor', 'c.reason', 'c.created_at'])
      .where('e.kind', '=', ref.kind)
      .where('e.namespace', '=', ref.namespace)
      .where('e.name', '=', ref.name)
      .orderBy('e.revision')
      .execute();
    return rows.map((r) => ({
      ...toEvent(r as EventRow),
      actor: r.actor,
      reason: r.reason,
      createdAt: r.created_at,
    }));
  }

  /** Throws NotFoundError unless 0 <= revision <= head. */
  async assertRevision(revision: number): Promise<Head> {
    const head = await this.head();
    if (!Number.isInteger(revision) || revision < 0 || revision > head.revision)
      throw new NotFoundError(`revision ${revision} does not exist (head is ${head.revision})`, [
        { path: 'revision', message: `must be between 0 and ${head.revision}` },
      ]);
    return head;
  }

  async countEvents(): Promise<number> {
    const r = await sql<{ n: number }>`SELECT count(*)::int AS n FROM events`.execute(this.db);
    return r.rows[0]?.n ?? 0;
  }
}

export type { MeshState };
