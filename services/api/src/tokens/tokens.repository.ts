import { EventStore } from '@meshplane/event-store';
import { Injectable } from '@nestjs/common';
import type { Generated, Kysely } from 'kysely';
import type { Role } from '../common/http';

type ApiTokensTable = {
  id: string;
  name: string;
  role: Role;
  token_hash: string;
  created_at: Generated<Date>;
  created_by: string;
  revoked_at: Date | null;
  revoked_by: string | null;
};

type ApiTokenAuditTable = {
  id: Generated<number>;
  at: Generated<Date>;
  actor: string;
  action: 'create' | 'revoke';
  token_id: string;
  token_name: string;
  role: Role;
  request_id: string | null;
};

type TokenTables = {
  api_tokens: ApiTokensTable;
  api_token_audit: ApiTokenAuditTable;
};

export interface TokenRecord {
  id: string;
  name: string;
  role: Role;
  createdAt: Date;
  createdBy: string;
  revokedAt: Date | null;
  revokedBy: string | null;
}

export interface TokenAuditRecord {
  id: number;
  at: Date;
  actor: string;
  action: 'create' | 'revoke';
  tokenId: string;
  tokenName: string;
  role: Role;
  requestId: string | null;
}

export interface TokenAuditFilter {
  actor?: string;
  since?: Date;
  until?: Date;
  limit: number;
}

const TOKEN_COLUMNS = ['id', 'name', 'role', 'created_at', 'created_by', 'revoked_at', 'revoked_by'] as const;

type TokenRow = Pick<ApiTokensTable, 'id' | 'name' | 'role' | 'created_by' | 'revoked_at' | 'revoked_by'> & {
  created_at: Date;
};

function toRecord(r: TokenRow): TokenRecord {
  return {
    id: r.id,
    name: r.name,
    role: r.role,
    createdAt: r.created_at,
    createdBy: r.created_by,
    revokedAt: r.revoked_at,
    revokedBy: r.revoked_by,
  };
}

export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  const e = err as { code?: string; constraint?: string };
  return e?.code === '23505' && (!constraint || e.constraint === constraint);
}

/** SQL for tokens and their audit trail; a token change and its audit row commit together. */
@Injectable()
export class TokensRepository {
  private readonly db: Kysely<TokenTables>;

  constructor(store: EventStore) {
    // Same pool as the log: the store's Kysely, widened with this module's tables.
    this.db = store.db.withTables<TokenTables>() as unknown as Kysely<TokenTables>;
  }

  async findActiveByHash(hash: string): Promise<TokenRecord | undefined> {
    const row = await this.db
      .selectFrom('api_tokens')
      .select(TOKEN_COLUMNS)
      .where('token_hash', '=', hash)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return row && toRecord(row);
  }

  async findByHash(hash: string): Promise<TokenRecord | undefined> {
    const row = await this.db
      .selectFrom('api_tokens')
      .select(TOKEN_COLUMNS)
      .where('token_hash', '=', hash)
      .executeTakeFirst();
    return row && toRecord(row);
  }

  async findById(id: string): Promise<TokenRecord | undefined> {
    const row = await this.db
      .selectFrom('api_tokens')
      .select(TOKEN_COLUMNS)
      .where('id', '=', id)
      .executeTakeFirst();
    return row && toRecord(row);
  }

  async list(): Promise<TokenRecord[]> {
    const rows = await this.db
      .selectFrom('api_tokens')
      .select(TOKEN_COLUMNS)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toRecord);
  }

  /** Inserts the token and its `create` audit row in one transaction. */
  async create(t: {
    id: string;
    name: string;
    role: Role;
    hash: string;
    createdBy: string;
    requestId: string | null;
  }): Promise<TokenRecord> {
    return this.db.transaction().execute(async (trx) => {
      const row = await trx
        .insertInto('api_tokens')
        .values({ id: t.id, name: t.name, role: t.role, token_hash: t.hash, created_by: t.createdBy })
        .returning(TOKEN_COLUMNS)
        .executeTakeFirstOrThrow();
      await trx
        .insertInto('api_token_audit')
        .values({
          actor: t.createdBy,
          action: 'create',
          token_id: t.id,
          token_name: t.name,
          role: t.role,
          request_id: t.requestId,
        })
        .execute();
      return toRecord(row);
    });
  }

  /** Revokes a live token and audits it; undefined when it was not live (nothing written). */
  async revoke(id: string, actor: string, requestId: string | null): Promise<TokenRecord | undefined> {
    return this.db.transaction().execute(async (trx) => {
      const row = await trx
        .updateTable('api_tokens')
        .set({ revoked_at: new Date(), revoked_by: actor })
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .returning(TOKEN_COLUMNS)
        .executeTakeFirst();
      if (!row) return undefined;
      await trx
        .insertInto('api_token_audit')
        .values({
          actor,
          action: 'revoke',
          token_id: id,
          token_name: row.name,
          role: row.role,
          request_id: requestId,
        })
        .execute();
      return toRecord(row);
    });
  }

  async listAudit(f: TokenAuditFilter): Promise<TokenAuditRecord[]> {
    let q = this.db.selectFrom('api_token_audit').selectAll();
    if (f.actor) q = q.where('actor', '=', f.actor);
    if (f.since) q = q.where('at', '>=', f.since);
    if (f.until) q = q.where('at', '<=', f.until);
    const rows = await q.orderBy('at').orderBy('id').limit(f.limit).execute();
    return rows.map((r) => ({
      id: r.id,
      at: r.at,
      actor: r.actor,
      action: r.action,
      tokenId: r.token_id,
      tokenName: r.token_name,
      role: r.role,
      requestId: r.request_id,
    }));
  }
}
