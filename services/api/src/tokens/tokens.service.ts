import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { MeshError, NotFoundError, UnauthorizedError } from '@meshplane/domain';
import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import type { Principal, Role } from '../common/http';
import { API_CONFIG, ApiLogger } from '../common/logger';
import type { ApiConfig } from '../config';
import { isUniqueViolation, type TokenRecord, TokensRepository } from './tokens.repository';

/** A second live token with the same name: the name is the actor in the log, so it must be unique. */
export class NameTakenError extends MeshError {
  readonly code = 'CONFLICT';
}

export const TOKEN_PREFIX = 'mpt_';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Tokens are 256 random bits, so a plain SHA-256 is a safe one-way lookup key (no salt or KDF needed). */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export interface CreatedToken extends TokenRecord {
  token: string;
}

/**
 * How long a successful token lookup is reused. Writes hold pool connections
 * while they wait for the append lock, so a lookup per request would queue
 * behind them; a short cache keeps authentication off the pool. A revocation
 * takes effect at once on this replica and within this bound on the others
 * (the Kubernetes API server caches token reviews the same way).
 */
export const AUTH_CACHE_TTL_MS = 2000;
const AUTH_CACHE_MAX = 10_000;

@Injectable()
export class TokensService implements OnApplicationBootstrap {
  private readonly cache = new Map<string, { principal: Principal; expires: number }>();

  constructor(
    private readonly repo: TokensRepository,
    private readonly logger: ApiLogger,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    if (this.config.bootstrapToken) await this.ensureBootstrapToken(this.config.bootstrapToken);
  }

  /** Resolves `Authorization: Bearer <token>` to a live token, or throws 401. */
  async authenticate(authorization: string | undefined): Promise<Principal> {
    const path = 'headers.authorization';
    if (!authorization) {
      throw new UnauthorizedError('missing bearer token', [
        { path, message: 'send Authorization: Bearer <token>' },
      ]);
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!m)
      throw new UnauthorizedError('malformed Authorization header', [
        { path, message: 'must be Bearer <token>' },
      ]);
    const hash = hashToken(m[1]!);
    const now = Date.now();
    const hit = this.cache.get(hash);
    if (hit && hit.expires > now) return hit.principal;
    const found = await this.repo.findActiveByHash(hash);
    if (!found) {
      this.cache.delete(hash);
      throw new UnauthorizedError('invalid or revoked token', [{ path, message: 'token is not valid' }]);
    }
    const principal: Principal = { tokenId: found.id, name: found.name, role: found.role };
    if (this.cache.size >= AUTH_CACHE_MAX) this.cache.clear();
    this.cache.set(hash, { principal, expires: now + AUTH_CACHE_TTL_MS });
    return principal;
  }

  async create(name: string, role: Role, by: Principal, requestId: string | null): Promise<CreatedToken> {
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    try {
      const rec = await this.repo.create({
        id: randomUUID(),
        name,
        role,
        hash: hashToken(token),
        createdBy: by.name,
        requestId,
      });
      return { ...rec, token };
    } catch (err) {
      if (isUniqueViolation(err, 'api_tokens_active_name')) {
        throw new NameTakenError(`a live token named ${name} already exists`, [
          { path: 'name', message: 'is used by a live token; revoke it or choose another name' },
        ]);
      }
      throw err;
    }
  }

  /** Revokes; revoking an already revoked token is a no-op that returns it (and audits nothing). */
  async revoke(id: string, by: Principal, requestId: string | null): Promise<TokenRecord> {
    if (!UUID.test(id))
      throw new NotFoundError(`token ${id} does not exist`, [{ path: 'id', message: 'no such token' }]);
    const revoked = await this.repo.revoke(id.toLowerCase(), by.name, requestId);
    for (const [hash, entry] of this.cache)
      if (entry.principal.tokenId === id.toLowerCase()) this.cache.delete(hash);
    if (revoked) return revoked;
    const existing = await this.repo.findById(id.toLowerCase());
    if (!existing)
      throw new NotFoundError(`token ${id} does not exist`, [{ path: 'id', message: 'no such token' }]);
    return existing;
  }

  list(): Promise<TokenRecord[]> {
    return this.repo.list();
  }

  /**
   * Makes sure an admin token with this value exists. A revoked one stays
   * revoked (an operator revoked it on purpose; reviving it on restart would
   * undo that), with a warning. Safe when several replicas start together.
   */
  private async ensureBootstrapToken(token: string): Promise<void> {
    const hash = hashToken(token);
    const existing = await this.repo.findByHash(hash);
    if (existing) {
      if (existing.revokedAt) {
        this.logger.log('warn', 'MESH_BOOTSTRAP_TOKEN names a revoked token; it stays revoked', {
          tokenId: existing.id,
        });
      }
      return;
    }
    // `bootstrap` unless a live token already has that name (the bootstrap value was rotated).
    for (const name of ['bootstrap', `bootstrap-${hash.slice(0, 8)}`]) {
      try {
        const rec = await this.repo.create({
          id: randomUUID(),
          name,
          role: 'admin',
          hash,
          createdBy: 'system:bootstrap',
          requestId: null,
        });
        this.logger.log('info', 'bootstrap admin token created', { tokenId: rec.id, name });
        return;
      } catch (err) {
        if (isUniqueViolation(err, 'api_tokens_token_hash_key')) return; // another replica won the race
        if (!isUniqueViolation(err, 'api_tokens_active_name')) throw err;
      }
    }
    throw new Error('could not create the bootstrap token: names bootstrap and bootstrap-<hash> are taken');
  }
}
