import {
  isValidTraceparent,
  type MsgHdrs,
  natsHeaderGetter,
  natsHeaderSetter,
  type TraceContext,
} from '@meshplane/messaging';
import {
  type Attributes,
  type Context,
  context,
  type Link,
  ProxyTracerProvider,
  propagation,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  type SpanOptions,
  SpanStatusCode,
  type TextMapPropagator,
  trace,
} from '@opentelemetry/api';

export {
  type Attributes,
  type Context,
  context,
  type Link,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
};

/** The one tracer of Meshplane's own spans (instrumentations bring their own). */
export const tracer = trace.getTracer('meshplane');

/**
 * Records `err` on `span` as an exception event (at `time`, default now: a span built after the
 * fact passes when it happened) and sets ERROR status with its message.
 */
export function recordError(span: Span, err: unknown, time?: number): void {
  const e = err instanceof Error ? err : new Error(String(err));
  span.recordException(e, time);
  span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
}

/**
 * Runs `fn` in a new active span that ends when `fn` settles; a throw is recorded on the span
 * (exception event, ERROR status with the message) and rethrown. With tracing off the span is
 * the API's non-recording one and this costs a function call.
 */
export function withSpan<T>(
  name: string,
  options: SpanOptions,
  fn: (span: Span) => Promise<T>,
  parent: Context = context.active(),
): Promise<T> {
  return tracer.startActiveSpan(name, options, parent, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      recordError(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/**
 * Runs `fn` synchronously with `span` active under `parent`: what an instrumented call made inside
 * it (a pg query) takes as its parent, without an async context (AppendOptions.traceScope).
 */
export function spanScope(span: Span, parent: Context = context.active()): <T>(fn: () => T) => T {
  const ctx = trace.setSpan(parent, span);
  return (fn) => context.with(ctx, fn);
}

type Carrier = Record<string, string>;
const recordSetter = {
  set(c: Carrier, k: string, v: string) {
    c[k] = v;
  },
};
const recordGetter = {
  keys: (c: Carrier) => Object.keys(c),
  get: (c: Carrier, k: string) => c[k],
};

/**
 * The W3C trace context of `ctx` (default: the active one), as a change set stores it
 * (`trace_context` column = traceparent; tracestate goes to metadata). Undefined when there is
 * no valid span in it, which is always the case with tracing off.
 */
export function traceContextOf(
  ctx: Context = context.active(),
  propagator: TextMapPropagator = propagation,
): TraceContext | undefined {
  if (!trace.getSpanContext(ctx)) return undefined;
  const carrier: Carrier = {};
  propagator.inject(ctx, carrier, recordSetter);
  if (!isValidTraceparent(carrier.traceparent)) return undefined;
  return carrier.tracestate
    ? { traceparent: carrier.traceparent, tracestate: carrier.tracestate }
    : { traceparent: carrier.traceparent };
}

/** A context whose remote parent is the stored `traceparent`; ROOT_CONTEXT when missing or malformed. */
export function contextFromTraceparent(
  traceparent: string | null | undefined,
  tracestate?: string | null,
  propagator: TextMapPropagator = propagation,
): Context {
  if (!isValidTraceparent(traceparent)) return ROOT_CONTEXT;
  const carrier: Carrier = { traceparent };
  if (tracestate) carrier.tracestate = tracestate;
  return propagator.extract(ROOT_CONTEXT, carrier, recordGetter);
}

/** The span context a stored traceparent names, or undefined. */
export function spanContextFromTraceparent(
  traceparent: string | null | undefined,
  tracestate?: string | null,
  propagator: TextMapPropagator = propagation,
): SpanContext | undefined {
  return trace.getSpanContext(contextFromTraceparent(traceparent, tracestate, propagator));
}

/** A span link to a stored trace context (rollbacks, coalesced revisions); undefined when there is none. */
export function linkTo(
  traceparent: string | null | undefined,
  attributes?: Attributes,
  propagator: TextMapPropagator = propagation,
): Link | undefined {
  const sc = spanContextFromTraceparent(traceparent, undefined, propagator);
  if (!sc) return undefined;
  return attributes ? { context: sc, attributes } : { context: sc };
}

/** The trace id of a stored traceparent (what `meshctl trace` shows and Jaeger/Tempo open). */
export function traceIdOf(traceparent: string | null | undefined): string | null {
  return isValidTraceparent(traceparent) ? traceparent.split('-')[1]! : null;
}

/** Writes the context of `ctx` into NATS message headers (traceparent, tracestate). */
export function injectNatsHeaders(
  hdrs: MsgHdrs,
  ctx: Context = context.active(),
  propagator: TextMapPropagator = propagation,
): void {
  propagator.inject(ctx, hdrs, natsHeaderSetter);
}

/**
 * The context a NATS message carries (a remote parent), on top of ROOT_CONTEXT. A missing or
 * malformed traceparent gives a context without a span: whatever starts under it is a new trace.
 */
export function extractNatsHeaders(
  hdrs: MsgHdrs | undefined,
  propagator: TextMapPropagator = propagation,
): Context {
  return propagator.extract(ROOT_CONTEXT, hdrs, natsHeaderGetter);
}

/** True when `ctx` (default: the active context) holds a recorded span: skip work only a trace needs. */
export function isTracing(ctx: Context = context.active()): boolean {
  return trace.getSpan(ctx)?.isRecording() === true;
}

/** The API's no-op provider: what the global provider delegates to until one is registered. */
const NOOP_TRACER_PROVIDER = new ProxyTracerProvider().getDelegate();

/**
 * False while no tracer provider is registered (no SDK, no test provider): every span is then a
 * no-op whatever its parent, so a message's trace context need not even be read. True when in
 * doubt (another copy of the API in the process).
 */
export function tracerRegistered(): boolean {
  const p = trace.getTracerProvider();
  return !(p instanceof ProxyTracerProvider) || p.getDelegate() !== NOOP_TRACER_PROVIDER;
}
