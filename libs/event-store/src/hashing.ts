import { createHash } from 'node:crypto';
import { type CommittedEvent, canonicalJson } from '@meshplane/domain';

export const GENESIS_HASH = '0'.repeat(64);

/** The fields of a change set that the hash covers: everything that is stored. */
export interface HashableChangeSet {
  revision: number;
  changeId: string;
  cluster: string;
  actor: string;
  reason: string;
  requestId: string | null;
  idempotencyKey: string | null;
  idempotencyFingerprint: string | null;
  traceContext: string | null;
  restoredFromRevision: number | null;
  metadata: Record<string, unknown>;
  createdAt: Date;
  events: CommittedEvent[];
}

/** Canonical bytes of one change set and its events (sorted keys, no whitespace, nulls explicit). */
export function canonicalChangeSet(cs: HashableChangeSet): string {
  return canonicalJson({
    revision: cs.revision,
    changeId: cs.changeId,
    cluster: cs.cluster,
    actor: cs.actor,
    reason: cs.reason,
    requestId: cs.requestId,
    idempotencyKey: cs.idempotencyKey,
    idempotencyFingerprint: cs.idempotencyFingerprint,
    traceContext: cs.traceContext,
    restoredFromRevision: cs.restoredFromRevision,
    metadata: cs.metadata,
    createdAt: cs.createdAt.toISOString(),
    events: cs.events.map((e) => ({
      seq: e.seq,
      kind: e.kind,
      namespace: e.namespace,
      name: e.name,
      op: e.op,
      spec: e.op === 'put' ? (e.spec ?? {}) : null,
      prevVersion: e.prevVersion,
      origin: e.origin ?? null,
    })),
  });
}

/** hash = SHA-256(prev_hash || canonical bytes), hex. */
export function chainHash(prevHash: string, cs: HashableChangeSet): string {
  return createHash('sha256').update(prevHash).update(canonicalChangeSet(cs)).digest('hex');
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
