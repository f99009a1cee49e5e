import { type ChangeSetFilter, EventStore, type VerifyResult } from '@meshplane/event-store';
import { Injectable } from '@nestjs/common';
import { TokensRepository } from '../tokens/tokens.repository';

export interface AuditFilter {
  actor?: string;
  kind?: string;
  namespace?: string;
  name?: string;
  since?: Date;
  until?: Date;
  type?: 'change' | 'token';
  limit: number;
}

export interface ChangeAuditEntry {
  type: 'change';
  time: Date;
  actor: string;
  revision: number;
  changeId: string;
  reason: string;
  requestId: string | null;
  idempotencyKey: string | null;
  traceContext: string | null;
  restoredFromRevision: number | null;
  eventCount: number;
  cluster: string;
  hash: string;
}

export interface TokenAuditEntry {
  type: 'token';
  time: Date;
  actor: string;
  action: 'create' | 'revoke';
  tokenId: string;
  tokenName: string;
  role: string;
  requestId: string | null;
}

export type AuditEntry = ChangeAuditEntry | TokenAuditEntry;

/** One timeline over the two append-only trails: change sets and token create/revoke. */
@Injectable()
export class AuditService {
  constructor(
    private readonly store: EventStore,
    private readonly tokens: TokensRepository,
  ) {}

  async list(f: AuditFilter): Promise<{ items: AuditEntry[] }> {
    // Token entries touch no resource, so a resource filter leaves only changes.
    const resourceFilter = Boolean(f.kind || f.namespace || f.name);
    const csFilter: ChangeSetFilter = { limit: f.limit };
    for (const k of ['actor', 'kind', 'namespace', 'name', 'since', 'until'] as const) {
      if (f[k] !== undefined) (csFilter as Record<string, unknown>)[k] = f[k];
    }
    const [changes, tokens] = await Promise.all([
      f.type === 'token' ? [] : this.store.listChangeSets(csFilter),
      f.type === 'change' || resourceFilter
        ? []
        : this.tokens.listAudit({ actor: f.actor, since: f.since, until: f.until, limit: f.limit }),
    ]);
    const items: AuditEntry[] = [
      ...changes.map(
        (c): ChangeAuditEntry => ({
          type: 'change',
          time: c.createdAt,
          actor: c.actor,
          revision: c.revision,
          changeId: c.changeId,
          reason: c.reason,
          requestId: c.requestId,
          idempotencyKey: c.idempotencyKey,
          traceContext: c.traceContext,
          restoredFromRevision: c.restoredFromRevision,
          eventCount: c.eventCount,
          cluster: c.cluster,
          hash: c.hash,
        }),
      ),
      ...tokens.map(
        (t): TokenAuditEntry => ({
          type: 'token',
          time: t.at,
          actor: t.actor,
          action: t.action,
          tokenId: t.tokenId,
          tokenName: t.tokenName,
          role: t.role,
          requestId: t.requestId,
        }),
      ),
    ];
    // Both inputs are in time order and each holds at most `limit`, so the first `limit` merged are exact.
    items.sort((a, b) => a.time.getTime() - b.time.getTime());
    return { items: items.slice(0, f.limit) };
  }

  verify(from?: number, to?: number): Promise<VerifyResult> {
    return this.store.verify(from, to);
  }
}
