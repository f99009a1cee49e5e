import { randomUUID } from 'node:crypto';
import {
  type Change,
  type CommittedEvent,
  ConflictError,
  type ErrorDetail,
  type MeshState,
  type ResourceRef,
  refKey,
  type StateView,
  type StoredResource,
  ValidationError,
  viewOf,
} from '@meshplane/domain';
import type pg from 'pg';
import { chainHash } from './hashing';
import { jsonEqual } from './json-equal';

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
    return !(cur && jsonEqual(cur.spec, c.spec) && (cur.origin ?? null) === (c.origin ?? null));
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

/** The projection rows a batch leaves behind: the last put of each resource, or its deletion. */
export interface ProjectionDelta {
  puts: StoredResource[];
  deletes: ResourceRef[];
}

/** The delta of one change set (its events name each resource once). */
export function deltaOf(cs: ChangeSet): ProjectionDelta {
  const puts: StoredResource[] = [];
  const deletes: ResourceRef[] = [];
  for (const e of cs.events) {
    if (e.op === 'delete') deletes.push(e);
    else {
      const r: StoredResource = {
        kind: e.kind,
        namespace: e.namespace,
        name: e.name,
        spec: e.spec ?? {},
        version: cs.revision,
      };
      if (e.origin !== undefined) r.origin = e.origin;
      puts.push(r);
    }
  }
  return { puts, deletes };
}

export async function writeChangeSet(client: pg.PoolClient, p: PreparedAppend): Promise<boolean> {
  return writeChangeSets(client, [p], deltaOf(p.changeSet), p.changeSet.revision - 1);
}

/**
 * Writes consecutive prepared change sets in ONE statement: the new head, the
 * change sets, their events, the projection delta, and one NOTIFY per revision
 * to wake relays. One round trip however many revisions, which keeps the head
 * lock short: that lock hold is what bounds append throughput.
 *
 * The head moves only if it is still at `fromRevision` (the UPDATE waits for a
 * concurrent appender's lock, then re-checks), and everything else is written
 * only if it moved, so the statement can run in autocommit without holding the
 * lock beforehand: false means another appender got there first and nothing
 * was written. It is a named prepared statement: parsed and planned once per
 * connection.
 */
export async function writeChangeSets(
  client: pg.PoolClient,
  ps: PreparedAppend[],
  delta: ProjectionDelta,
  fromRevision: number,
): Promise<boolean> {
  const css = ps.map((p) => p.changeSet);
  const ev: CommittedEvent[] = [];
  for (const cs of css) for (const e of cs.events) ev.push(e);
  const last = css[css.length - 1]!;
  const { puts, deletes: dels } = delta;
  const res = await client.query({
    name: 'meshplane_write_change_sets',
    text: WRITE_CHANGE_SETS,
    values: [
      css.map((c) => c.revision),
      css.map((c) => c.changeId),
      css.map((c) => c.cluster),
      css.map((c) => c.actor),
      css.map((c) => c.reason),
      css.map((c) => c.requestId),
      css.map((c) => c.idempotencyKey),
      ps.map((p) => p.idempotencyFingerprint),
      css.map((c) => c.traceContext),
      css.map((c) => c.restoredFromRevision),
      css.map((c) => JSON.stringify(c.metadata)),
      css.map((c) => c.eventCount),
      css.map((c) => c.createdAt),
      css.map((c) => c.prevHash),
      css.map((c) => c.hash),
      JSON.stringify(eventRows(ev)),
      JSON.stringify(resourceRows(puts)),
      dels.map((r) => r.kind),
      dels.map((r) => r.namespace),
      dels.map((r) => r.name),
      last.revision,
      last.hash,
      fromRevision,
    ],
  });
  return res.rowCount === css.length;
}

/**
 * Events and projection rows travel as one JSON document each (rows of named
 * members, the specs nested as they are), which is one native JSON.stringify
 * instead of pg's per-element escaping of text arrays.
 */
function eventRows(ev: CommittedEvent[]) {
  return ev.map((e) => ({
    revision: e.revision,
    seq: e.seq,
    kind: e.kind,
    namespace: e.namespace,
    name: e.name,
    op: e.op,
    spec: e.op === 'put' ? (e.spec ?? {}) : null,
    prev_version: e.prevVersion,
    origin: e.origin ?? null,
  }));
}

function resourceRows(rs: StoredResource[]) {
  return rs.map((r) => ({
    kind: r.kind,
    namespace: r.namespace,
    name: r.name,
    spec: r.spec,
    version: r.version,
    origin: r.origin ?? null,
  }));
}

// Every part reads `hd`, so the guarded head UPDATE runs first and gates the rest.
const WRITE_CHANGE_SETS = `WITH hd AS (
       UPDATE mesh_head SET revision = $21, hash = $22 WHERE id AND revision = $23 RETURNING revision
     ), cs AS (
       INSERT INTO change_sets (revision, change_id, cluster, actor, reason, request_id, idempotency_key,
         idempotency_fingerprint, trace_context, restored_from_revision, metadata, event_count, created_at,
         prev_hash, hash)
       SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
         $8::text[], $9::text[], $10::bigint[], $11::text[]::jsonb[], $12::int[], $13::timestamptz[],
         $14::text[], $15::text[])
       WHERE EXISTS (SELECT FROM hd)
     ), ev AS (
       INSERT INTO events (revision, seq, kind, namespace, name, op, spec, prev_version, origin)
       SELECT * FROM json_to_recordset($16::json) AS e(revision bigint, seq int, kind text, namespace text,
         name text, op text, spec jsonb, prev_version bigint, origin text)
       WHERE EXISTS (SELECT FROM hd)
     ), up AS (
       INSERT INTO resources (kind, namespace, name, spec, version, origin)
       SELECT * FROM json_to_recordset($17::json) AS r(kind text, namespace text, name text, spec jsonb,
         version bigint, origin text)
       WHERE EXISTS (SELECT FROM hd)
       ON CONFLICT (kind, namespace, name)
       DO UPDATE SET spec = excluded.spec, version = excluded.version, origin = excluded.origin
     ), del AS (
       DELETE FROM resources r USING unnest($18::text[], $19::text[], $20::text[]) AS d(k, ns, n)
       WHERE r.kind = d.k AND r.namespace = d.ns AND r.name = d.n AND EXISTS (SELECT FROM hd)
     )
     SELECT pg_notify('mesh_revisions', r::text) FROM unnest($1::bigint[]) AS r WHERE EXISTS (SELECT FROM hd)`;
