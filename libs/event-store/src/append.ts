import { randomUUID } from 'node:crypto';
import {
  type Change,
  type CommittedEvent,
  ConflictError,
  canonicalEqual,
  type ErrorDetail,
  type MeshState,
  refKey,
  type StateView,
  ValidationError,
  viewOf,
} from '@meshplane/domain';
import type pg from 'pg';
import { chainHash } from './hashing';

import type { AppendOptions, ChangeSet, Head } from './types';

/** What the append transaction decided, before anything is written. */
export interface PreparedAppend {
  changeSet: ChangeSet;
  idempotencyFingerprint: string | null;
}

/** Validates the options that do not depend on the log (nothing is read yet). */
export function checkAppendOptions(opts: AppendOptions): void {
  const details: ErrorDetail[] = [];
  if (typeof opts.reason !== 'string' || opts.reason.trim() === '')
    details.push({ path: 'reason', message: 'is required and must not be empty' });
  if (typeof opts.actor !== 'string' || opts.actor.trim() === '')
    details.push({ path: 'actor', message: 'is required and must not be empty' });
  if (
    opts.expectedRevision !== undefined &&
    !(Number.isInteger(opts.expectedRevision) && opts.expectedRevision >= 0)
  )
    details.push({ path: 'expectedRevision', message: 'must be a non-negative integer' });
  if (details.length) throw new ValidationError('invalid append', details);
}

/**
 * Drops the changes that would change nothing: a put equal to the current spec
 * (and origin), a delete of something absent. What is left is what gets recorded.
 */
export function effectiveChanges(state: MeshState, changes: Change[]): Change[] {
  return changes.filter((c) => {
    const cur = state.resources.get(refKey(c));
    if (c.op === 'delete') return cur !== undefined;
    return !(cur && canonicalEqual(cur.spec, c.spec) && (cur.origin ?? null) === (c.origin ?? null));
  });
}

/** Decides the change set at `head + 1`: concurrency checks, validation, events, hash. Pure. */
export function prepareAppend(
  state: MeshState,
  head: Head,
  changes: Change[],
  opts: AppendOptions,
  cluster: string,
  /** The validator's view of `state`; an indexed one makes validation O(changes). */
  view: StateView = viewOf(state),
): PreparedAppend | null {
  if (opts.expectedRevision !== undefined && opts.expectedRevision !== head.revision) {
    throw new ConflictError(
      `expected revision ${opts.expectedRevision} but the head is ${head.revision}`,
      head.revision,
      [{ path: 'expectedRevision', message: `head is ${head.revision}` }],
    );
  }
  const versionConflicts: ErrorDetail[] = [];
  for (const [key, expected] of Object.entries(opts.expectedVersions ?? {})) {
    const actual = state.resources.get(key)?.version ?? 0;
    if (actual !== expected)
      versionConflicts.push({
        path: `expectedVersions.${key}`,
        message: `expected ${expected}, found ${actual}`,
      });
  }
  if (versionConflicts.length)
    throw new ConflictError('resource version conflict', head.revision, versionConflicts);

  const effective = effectiveChanges(state, changes);
  if (effective.length === 0) return null;
  opts.validate?.(view, effective);

  const revision = head.revision + 1;
  const events: CommittedEvent[] = effective.map((c, seq) => {
    const prevVersion = state.resources.get(refKey(c))?.version ?? null;
    const e: CommittedEvent = {
      revision,
      seq,
      kind: c.kind,
      namespace: c.namespace,
      name: c.name,
      op: c.op,
      prevVersion,
    };
    if (c.op === 'put') {
      e.spec = c.spec;
      if (c.origin !== undefined) e.origin = c.origin;
    }
    return e;
  });
  const base = {
    revision,
    changeId: randomUUID(),
    cluster,
    actor: opts.actor,
    reason: opts.reason,
    requestId: opts.requestId ?? null,
    idempotencyKey: opts.idempotencyKey ?? null,
    traceContext: opts.traceContext ?? null,
    restoredFromRevision: opts.restoredFromRevision ?? null,
    metadata: opts.metadata ?? {},
    createdAt: new Date(),
    events,
  };
  const idempotencyFingerprint = opts.idempotencyKey ? (opts.idempotencyFingerprint ?? null) : null;
  const hash = chainHash(head.hash, { ...base, idempotencyFingerprint });
  return {
    changeSet: { ...base, eventCount: events.length, prevHash: head.hash, hash },
    idempotencyFingerprint,
  };
}

/**
 * Writes a prepared change set in ONE statement: the change set, its events,
 * the projection upserts and deletes, the new head, and the NOTIFY that wakes
 * relays. One round trip keeps the head lock short, which bounds throughput.
 */
export async function writeChangeSet(client: pg.PoolClient, p: PreparedAppend): Promise<void> {
  const cs = p.changeSet;
  const ev = cs.events;
  const puts = ev.filter((e) => e.op === 'put');
  const dels = ev.filter((e) => e.op === 'delete');
  await client.query(
    `WITH cs AS (
       INSERT INTO change_sets (revision, change_id, cluster, actor, reason, request_id, idempotency_key,
         idempotency_fingerprint, trace_context, restored_from_revision, metadata, event_count, created_at,
         prev_hash, hash)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13, $14, $15)
     ), ev AS (
       INSERT INTO events (revision, seq, kind, namespace, name, op, spec, prev_version, origin)
       SELECT $1, * FROM unnest($16::int[], $17::text[], $18::text[], $19::text[], $20::text[],
         $21::text[]::jsonb[], $22::bigint[], $23::text[])
     ), up AS (
       INSERT INTO resources (kind, namespace, name, spec, version, origin)
       SELECT k, ns, n, s, $1, o FROM unnest($24::text[], $25::text[], $26::text[], $27::text[]::jsonb[], $28::text[])
         AS u(k, ns, n, s, o)
       ON CONFLICT (kind, namespace, name)
       DO UPDATE SET spec = excluded.spec, version = excluded.version, origin = excluded.origin
     ), del AS (
       DELETE FROM resources r USING unnest($29::text[], $30::text[], $31::text[]) AS d(k, ns, n)
       WHERE r.kind = d.k AND r.namespace = d.ns AND r.name = d.n
     ), hd AS (
       UPDATE mesh_head SET revision = $1, hash = $15 WHERE id
     )
     SELECT pg_notify('mesh_revisions', $1::text)`,
    [
      cs.revision,
      cs.changeId,
      cs.cluster,
      cs.actor,
      cs.reason,
      cs.requestId,
      cs.idempotencyKey,
      p.idempotencyFingerprint,
      cs.traceContext,
      cs.restoredFromRevision,
      JSON.stringify(cs.metadata),
      cs.eventCount,
      cs.createdAt,
      cs.prevHash,
      cs.hash,
      ev.map((e) => e.seq),
      ev.map((e) => e.kind),
      ev.map((e) => e.namespace),
      ev.map((e) => e.name),
      ev.map((e) => e.op),
      ev.map((e) => (e.op === 'put' ? JSON.stringify(e.spec ?? {}) : null)),
      ev.map((e) => e.prevVersion),
      ev.map((e) => e.origin ?? null),
      puts.map((e) => e.kind),
      puts.map((e) => e.namespace),
      puts.map((e) => e.name),
      puts.map((e) => JSON.stringify(e.spec ?? {})),
      puts.map((e) => e.origin ?? null),
      dels.map((e) => e.kind),
      dels.map((e) => e.namespace),
      dels.map((e) => e.name),
    ],
  );
}
