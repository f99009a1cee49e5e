import { headers } from '@nats-io/transport-node';
import {
  extractTraceContext,
  injectTraceContext,
  isValidTraceparent,
  isValidTracestate,
  natsHeaderGetter,
  natsHeaderSetter,
} from './trace-headers';

const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('natsHeaderSetter / natsHeaderGetter', () => {
  it('sets and reads a header', () => {
    const h = headers();
    natsHeaderSetter.set(h, 'traceparent', TP);
    expect(natsHeaderGetter.get(h, 'traceparent')).toBe(TP);
    expect(natsHeaderGetter.keys(h)).toEqual(['traceparent']);
  });

  it('returns undefined (not the empty string MsgHdrs.get gives) for a missing key', () => {
    const h = headers();
    expect(h.get('traceparent')).toBe('');
    expect(natsHeaderGetter.get(h, 'traceparent')).toBeUndefined();
    expect(natsHeaderGetter.get(undefined, 'traceparent')).toBeUndefined();
    expect(natsHeaderGetter.keys(undefined)).toEqual([]);
  });

  it('matches header names case-insensitively and returns all values of a repeated key', () => {
    const h = headers();
    h.set('Traceparent', TP);
    h.append('tracestate', 'a=1');
    h.append('tracestate', 'b=2');
    expect(natsHeaderGetter.get(h, 'traceparent')).toBe(TP);
    expect(natsHeaderGetter.get(h, 'tracestate')).toEqual(['a=1', 'b=2']);
  });
});

describe('traceparent validation', () => {
  it.each([
    [TP, true],
    ['01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future', true],
    ['00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra', false],
    ['ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', false],
    ['00-00000000000000000000000000000000-00f067aa0ba902b7-01', false],
    ['00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01', false],
    ['00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', false],
    ['00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01', false],
    ['garbage', false],
    ['', false],
  ])('%j -> %s', (value, ok) => {
    expect(isValidTraceparent(value)).toBe(ok);
  });

  it('validates tracestate list members', () => {
    expect(isValidTracestate('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7')).toBe(true);
    expect(isValidTracestate('no-equals')).toBe(false);
    expect(isValidTracestate('a=1\r\nx: y')).toBe(false);
    expect(isValidTracestate('x'.repeat(513))).toBe(false);
    expect(isValidTracestate(Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(','))).toBe(false);
  });
});

describe('inject / extract', () => {
  it('round-trips traceparent and tracestate', () => {
    const h = headers();
    expect(injectTraceContext(h, { traceparent: TP, tracestate: 'a=1' })).toBe(true);
    expect(extractTraceContext(h)).toEqual({ traceparent: TP, tracestate: 'a=1' });
  });

  it('never sends a malformed traceparent, and drops tracestate without one', () => {
    const h = headers();
    expect(injectTraceContext(h, { traceparent: 'nope', tracestate: 'a=1' })).toBe(false);
    expect(injectTraceContext(h, undefined)).toBe(false);
    expect(h.keys()).toEqual([]);
  });

  it('drops a malformed tracestate but keeps the traceparent', () => {
    const h = headers();
    injectTraceContext(h, { traceparent: TP, tracestate: 'bad' });
    expect(h.keys()).toEqual(['traceparent']);
  });

  it('extracts nothing from missing, malformed or ambiguous headers', () => {
    expect(extractTraceContext(undefined)).toBeUndefined();
    expect(extractTraceContext(headers())).toBeUndefined();
    const bad = headers();
    bad.set('traceparent', '00-xyz');
    expect(extractTraceContext(bad)).toBeUndefined();
    const two = headers();
    two.append('traceparent', TP);
    two.append('traceparent', TP);
    expect(extractTraceContext(two)).toBeUndefined();
  });

  it('joins repeated tracestate headers as one list', () => {
    const h = headers();
    h.set('traceparent', TP);
    h.append('tracestate', 'a=1');
    h.append('tracestate', 'b=2');
    expect(extractTraceContext(h)).toEqual({ traceparent: TP, tracestate: 'a=1,b=2' });
  });
});
