import { headers } from '@meshplane/messaging';
import { context, createContextKey, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { SyncContextManager } from './sync-context';
import {
  contextFromTraceparent,
  extractNatsHeaders,
  injectNatsHeaders,
  isTracing,
  linkTo,
  spanScope,
  traceContextOf,
  traceIdOf,
} from './trace';

// The real W3C propagator, passed in: the global one is the no-op until an SDK registers one.
const w3c = new W3CTraceContextPropagator();
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';
const TP = `00-${TRACE_ID}-${SPAN_ID}-01`;

const remote = (traceFlags = 1) =>
  trace.setSpanContext(ROOT_CONTEXT, { traceId: TRACE_ID, spanId: SPAN_ID, traceFlags, isRemote: true });

describe('NATS header carrier', () => {
  it('injects the span context as a W3C traceparent header', () => {
    const h = headers();
    injectNatsHeaders(h, remote(), w3c);
    expect(h.get('traceparent')).toBe(TP);
  });

  it('round-trips through the headers: same trace, span and sampled flag', () => {
    const h = headers();
    injectNatsHeaders(h, remote(0), w3c);
    const sc = trace.getSpanContext(extractNatsHeaders(h, w3c));
    expect(sc).toMatchObject({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 0, isRemote: true });
  });

  it('injects nothing from a context without a span', () => {
    const h = headers();
    injectNatsHeaders(h, ROOT_CONTEXT, w3c);
    expect(h.has('traceparent')).toBe(false);
  });

  it('extracts a header other clients wrote in canonical case (Traceparent)', () => {
    const h = headers();
    h.set('Traceparent', TP);
    expect(trace.getSpanContext(extractNatsHeaders(h, w3c))?.traceId).toBe(TRACE_ID);
  });

  it('gives no parent for missing headers, a missing traceparent or a malformed one', () => {
    expect(trace.getSpanContext(extractNatsHeaders(undefined, w3c))).toBeUndefined();
    expect(trace.getSpanContext(extractNatsHeaders(headers(), w3c))).toBeUndefined();
    for (const bad of [
      'garbage',
      `00-${'0'.repeat(32)}-${SPAN_ID}-01`, // all-zero trace id
      `00-${TRACE_ID}-${'0'.repeat(16)}-01`, // all-zero span id
      `ff-${TRACE_ID}-${SPAN_ID}-01`, // forbidden version
      `00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`, // upper-case hex
    ]) {
      const h = headers();
      h.set('traceparent', bad);
      expect({ bad, sc: trace.getSpanContext(extractNatsHeaders(h, w3c)) }).toEqual({ bad, sc: undefined });
    }
  });

  it('carries tracestate along with traceparent', () => {
    const h = headers();
    h.set('traceparent', TP);
    h.set('tracestate', 'vendor=abc');
    const ctx = extractNatsHeaders(h, w3c);
    expect(trace.getSpanContext(ctx)?.traceState?.serialize()).toBe('vendor=abc');
    const out = headers();
    injectNatsHeaders(out, ctx, w3c);
    expect(out.get('tracestate')).toBe('vendor=abc');
  });
});

describe('stored trace context', () => {
  it('traceContextOf gives the traceparent to store, undefined without a span', () => {
    expect(traceContextOf(remote(), w3c)).toEqual({ traceparent: TP });
    expect(traceContextOf(ROOT_CONTEXT, w3c)).toBeUndefined();
  });

  it('contextFromTraceparent parents on the stored context; bad values give the root context', () => {
    expect(trace.getSpanContext(contextFromTraceparent(TP, null, w3c))?.spanId).toBe(SPAN_ID);
    expect(contextFromTraceparent(null, null, w3c)).toBe(ROOT_CONTEXT);
    expect(contextFromTraceparent('00-xyz', null, w3c)).toBe(ROOT_CONTEXT);
  });

  it('linkTo makes a span link to a stored context, with attributes', () => {
    expect(linkTo(TP, { 'mesh.revision': 3 }, w3c)).toEqual({
      context: expect.objectContaining({ traceId: TRACE_ID, spanId: SPAN_ID }),
      attributes: { 'mesh.revision': 3 },
    });
    expect(linkTo(undefined, undefined, w3c)).toBeUndefined();
  });

  it('traceIdOf reads the trace id of a valid traceparent only', () => {
    expect(traceIdOf(TP)).toBe(TRACE_ID);
    expect(traceIdOf('nonsense')).toBeNull();
    expect(traceIdOf(null)).toBeNull();
  });
});

describe('spanScope', () => {
  const KEY = createContextKey('scope-test');
  beforeAll(() => context.setGlobalContextManager(new SyncContextManager().enable()));
  afterAll(() => context.disable());

  it('runs the call with the span active under the parent, and only during the call', () => {
    const span = trace.wrapSpanContext({
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags: 1,
    });
    const parent = ROOT_CONTEXT.setValue(KEY, 'request');
    const seen = spanScope(
      span,
      parent,
    )(() => [trace.getSpan(context.active()), context.active().getValue(KEY)]);
    expect(seen).toEqual([span, 'request']);
    expect(context.active()).toBe(ROOT_CONTEXT);
  });

  it('isTracing reads the context it is given: a recorded span is tracing, another span or none is not', () => {
    const recorded = new BasicTracerProvider().getTracer('test').startSpan('request');
    const notRecorded = trace.wrapSpanContext({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1 });
    expect(isTracing(trace.setSpan(ROOT_CONTEXT, recorded))).toBe(true);
    expect(isTracing(trace.setSpan(ROOT_CONTEXT, notRecorded))).toBe(false);
    expect(isTracing(ROOT_CONTEXT)).toBe(false);
    // The default is the active context, which is ROOT here outside any `with`.
    expect(isTracing()).toBe(false);
    recorded.end();
  });
});
