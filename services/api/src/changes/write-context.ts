import { createHash } from 'node:crypto';
import { type Change, canonicalJson, ValidationError } from '@meshplane/domain';
import type { AppendOptions, AppendResult, ChangeSet, EventStore } from '@meshplane/event-store';
import {
  type Context,
  ROOT_CONTEXT,
  type Span,
  spanScope,
  trace,
  traceContextOf,
  withSpan,
} from '@meshplane/telemetry';
import { type ApiRequest, type ApiResponse, header } from '../common/http';
import type { MetricsService } from '../common/metrics.service';

/** Who writes and how the write is tied to its request (log, idempotency, trace). */
export interface WriteContext {
  actor: string;
  requestId: string;
  idempotencyKey?: string;
  traceContext?: string;
  /** The request's trace context (its server span): the parent of the append span. */
  parent?: Context;
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

export function writeContext(req: ApiRequest): WriteContext {
  const ctx: WriteContext = { actor: req.principal!.name, requestId: req.requestId };
  if (req.otelContext) ctx.parent = req.otelContext;
  const key = header(req, 'idempotency-key');
  if (key !== undefined) {
    if (!IDEMPOTENCY_KEY.test(key)) {
      throw new ValidationError('invalid Idempotency-Key header', [
        {
          path: 'headers.idempotency-key',
          message: 'must be 1-255 printable ASCII characters without spaces',
        },
      ]);
    }
    ctx.idempotencyKey = key;
  }
  // A malformed traceparent is ignored, as W3C trace-context asks; it must not fail the change.
  const tp = header(req, 'traceparent');
  if (tp && TRACEPARENT.test(tp)) ctx.traceContext = tp;
  return ctx;
}

/** Same request, same fingerprint: canonical JSON makes key order irrelevant. */
export function fingerprint(route: string, body: unknown): string {
  return createHash('sha256')
    .update(`${route}\n${canonicalJson(body)}`)
    .digest('hex');
}

export type WriteOutcome =
  | { kind: 'written'; replayed: boolean; revision: number; body: Record<string, unknown> }
  | { kind: 'unchanged'; revision: number; body: { revision: number; unchanged: true } };

export function changeSetBody(cs: ChangeSet): Record<string, unknown> {
  const body: Record<string, unknown> = {
    revision: cs.revision,
    changeId: cs.changeId,
    hash: cs.hash,
    events: cs.events,
  };
  if (cs.restoredFromRevision !== null) body.restoredFromRevision = cs.restoredFromRevision;
  return body;
}

export function toOutcome(result: AppendResult): WriteOutcome {
  if (result.status === 'unchanged') {
    return {
      kind: 'unchanged',
      revision: result.headRevision,
      body: { revision: result.headRevision, unchanged: true },
    };
  }
  return {
    kind: 'written',
    replayed: result.status === 'replayed',
    revision: result.changeSet.revision,
    body: changeSetBody(result.changeSet),
  };
}

/** 201 for a new (or replayed) revision, 200 for a no-op; the log line gets the revision written. */
export function sendOutcome(res: ApiResponse, outcome: WriteOutcome): Record<string, unknown> {
  if (outcome.kind === 'unchanged') {
    res.status(200);
    return outcome.body;
  }
  res.status(201);
  if (outcome.replayed) res.setHeader('Idempotent-Replayed', 'true');
  else res.locals.revision = outcome.revision;
  res.setHeader('Location', `/v1/revisions/${outcome.revision}`);
  return outcome.body;
}

/**
 * The trace context stored with the change set: the `mesh.change.append` span when tracing is on
 * (the relay continues the trace from it), else the caller's traceparent header.
 */
export function storedTraceContext(ctx: WriteContext, append: Span): string | null {
  return (
    traceContextOf(trace.setSpan(ctx.parent ?? ROOT_CONTEXT, append))?.traceparent ?? ctx.traceContext ?? null
  );
}

/** What the append did, on its span. */
export function recordAppend(span: Span, result: AppendResult): AppendResult {
  span.setAttribute('mesh.append.status', result.status);
  if (result.status === 'unchanged') span.setAttribute('mesh.revision', result.headRevision);
  else
    span.setAttributes({
      'mesh.revision': result.changeSet.revision,
      'mesh.events': result.changeSet.eventCount,
    });
  return result;
}

/** What a write route adds to its append: expectations, validation, rollback origin. */
export type RouteAppendOptions = Omit<
  AppendOptions,
  'actor' | 'reason' | 'requestId' | 'traceContext' | 'idempotencyKey' | 'idempotencyFingerprint'
>;

export interface AuditedWrite {
  ctx: WriteContext;
  /** Names the route in the idempotency fingerprint: one key reused on another route is a conflict. */
  route: string;
  body: unknown;
  reason: string;
}

/**
 * One audited append of a write route, inside its `mesh.change.append` span: who and why from
 * the request, the idempotency key with the route's fingerprint, the stored trace context, and
 * the append metric.
 */
export async function appendAudited(
  store: EventStore,
  metrics: MetricsService,
  write: AuditedWrite,
  changes: Change[],
  options: RouteAppendOptions,
  span: Parameters<typeof withSpan>[1],
): Promise<WriteOutcome> {
  const { ctx } = write;
  const result = await withSpan(
    'mesh.change.append',
    span,
    async (s) =>
      recordAppend(
        s,
        await store.append(changes, {
          ...options,
          actor: ctx.actor,
          reason: write.reason,
          requestId: ctx.requestId,
          traceContext: storedTraceContext(ctx, s),
          ...(s.isRecording() ? { traceScope: spanScope(s, ctx.parent) } : {}),
          ...(ctx.idempotencyKey
            ? {
                idempotencyKey: ctx.idempotencyKey,
                idempotencyFingerprint: fingerprint(write.route, write.body),
              }
            : {}),
        }),
      ),
    ctx.parent,
  );
  metrics.observeAppend(result.status);
  return toOutcome(result);
}
