import { headers, Match, type MsgHdrs } from '@nats-io/transport-node';

/**
 * W3C trace-context over NATS headers. There is no OpenTelemetry instrumentation for nats.js, so
 * these are the TextMap carrier helpers that `propagation.inject/extract` take. The interfaces are
 * declared structurally so this library does not depend on @opentelemetry/api.
 */
export interface TextMapSetter<Carrier> {
  set(carrier: Carrier, key: string, value: string): void;
}

export interface TextMapGetter<Carrier> {
  keys(carrier: Carrier): string[];
  get(carrier: Carrier, key: string): undefined | string | string[];
}

export const natsHeaderSetter: TextMapSetter<MsgHdrs> = {
  set(carrier, key, value) {
    carrier.set(key, value);
  },
};

export const natsHeaderGetter: TextMapGetter<MsgHdrs | undefined> = {
  keys(carrier) {
    return carrier ? carrier.keys() : [];
  },
  // MsgHdrs.get returns '' for a missing key; propagators expect undefined. Header names are
  // matched case-insensitively because other clients canonicalize them (Traceparent).
  get(carrier, key) {
    if (!carrier?.has(key, Match.IgnoreCase)) return undefined;
    const values = carrier.values(key, Match.IgnoreCase);
    if (values.length === 0) return undefined;
    return values.length === 1 ? values[0] : values;
  },
};

export const TRACEPARENT_HEADER = 'traceparent';
export const TRACESTATE_HEADER = 'tracestate';

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * True for a traceparent a W3C parser accepts: version ff is invalid, all-zero ids are invalid,
 * and version 00 allows no trailing fields (later versions may append some).
 */
export function isValidTraceparent(value: string | null | undefined): value is string {
  if (!value) return false;
  const m = TRACEPARENT.exec(value);
  if (!m) return false;
  const [, version, traceId, spanId, , rest] = m;
  if (version === 'ff') return false;
  if (version === '00' && rest !== undefined) return false;
  return !/^0+$/.test(traceId!) && !/^0+$/.test(spanId!);
}

/** tracestate: at most 32 comma-separated list members, 512 chars; anything else is dropped. */
export function isValidTracestate(value: string | null | undefined): value is string {
  if (!value || value.length > 512 || /[\r\n]/.test(value)) return false;
  const members = value.split(',').filter((m) => m.trim() !== '');
  return members.length > 0 && members.length <= 32 && members.every((m) => /^[^=\s]+=[^=]*$/.test(m.trim()));
}

export interface TraceContext {
  traceparent: string;
  tracestate?: string;
}

/** Sets traceparent (+ tracestate) on `hdrs` when valid; a malformed value is left out, never sent. */
export function injectTraceContext(hdrs: MsgHdrs, ctx: Partial<TraceContext> | undefined): boolean {
  if (!ctx || !isValidTraceparent(ctx.traceparent)) return false;
  natsHeaderSetter.set(hdrs, TRACEPARENT_HEADER, ctx.traceparent);
  if (isValidTracestate(ctx.tracestate)) natsHeaderSetter.set(hdrs, TRACESTATE_HEADER, ctx.tracestate);
  return true;
}

/** The trace context a message carries, or undefined when it has none or it is malformed. */
export function extractTraceContext(hdrs: MsgHdrs | undefined): TraceContext | undefined {
  // Two traceparent values are ambiguous, so invalid; tracestate values combine, as in HTTP.
  const tp = natsHeaderGetter.get(hdrs, TRACEPARENT_HEADER);
  if (Array.isArray(tp) || !isValidTraceparent(tp)) return undefined;
  const raw = natsHeaderGetter.get(hdrs, TRACESTATE_HEADER);
  const ts = Array.isArray(raw) ? raw.join(',') : raw;
  return isValidTracestate(ts) ? { traceparent: tp, tracestate: ts } : { traceparent: tp };
}

export { headers, type MsgHdrs };
