import type { ChangeSet } from '@meshplane/event-store';
import { headers } from '@meshplane/messaging';
import { SpanStatusCode } from '@opentelemetry/api';
import { hrTimeToMilliseconds } from '@opentelemetry/core';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { AgentObserver } from './metrics';

// The spans of finished applies, built in batches (what the agent does with tracing on).
const exporter = new InMemorySpanExporter();
beforeAll(() => {
  new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).register();
});
afterEach(() => {
  exporter.reset();
  jest.useRealTimers();
});

const PUBLISH = '00f067aa0ba902b4';
const traceparent = `00-4bf92f3577b34da6a3ce929d0e0e4736-${PUBLISH}-01`;

function folded(obs: AgentObserver, n: number): void {
  const h = headers();
  h.set('traceparent', traceparent);
  obs.foldedRevision({ revision: n, createdAt: new Date(), events: [] } as unknown as ChangeSet, () => h);
}

const outcome = (revision: number, ok = true) => ({
  ok,
  kind: 'apply' as const,
  revision,
  ops: 1,
  batches: 1,
  durationMs: 1,
  at: Date.now(),
  attempt: 0,
  ...(ok ? {} : { error: 'EIO', retryInMs: 100 }),
});

describe('AgentObserver with batched spans', () => {
  it('builds nothing during the apply; the batch keeps the times, the parent and the children', async () => {
    const obs = new AgentObserver('n1', 'east', { batchSpans: true });
    folded(obs, 3);
    const before = Date.now();
    const apply = obs.beginApply(3);
    apply.compileStarted();
    apply.compiled({ 'mesh.full_compile': false });
    apply.submitted(outcome(3));
    const after = Date.now();
    expect(exporter.getFinishedSpans()).toEqual([]);

    await new Promise((r) => setTimeout(r, 20)); // built later: the recorded times, not the build's
    obs.flushSpans();
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name).sort()).toEqual(['mesh.compile', 'mesh.diff', 'mesh.revision.apply']);
    const applySpan = spans.find((s) => s.name === 'mesh.revision.apply')!;
    expect(applySpan.parentSpanContext?.spanId).toBe(PUBLISH);
    expect(hrTimeToMilliseconds(applySpan.startTime)).toBeGreaterThanOrEqual(before - 1);
    expect(hrTimeToMilliseconds(applySpan.endTime)).toBeLessThanOrEqual(after + 1);
    for (const child of spans.filter((s) => s !== applySpan))
      expect(child.parentSpanContext?.spanId).toBe(applySpan.spanContext().spanId);
    expect(spans.find((s) => s.name === 'mesh.compile')!.attributes['mesh.full_compile']).toBe(false);
  });

  it('a failure is recorded at the time it happened, not when the batch runs', async () => {
    const obs = new AgentObserver('n1', 'east', { batchSpans: true });
    folded(obs, 4);
    const apply = obs.beginApply(4);
    apply.compileStarted();
    apply.compiled({});
    apply.submitted(outcome(4, false));
    const after = Date.now();
    await new Promise((r) => setTimeout(r, 20));
    obs.flushSpans();
    const applySpan = exporter.getFinishedSpans().find((s) => s.name === 'mesh.revision.apply')!;
    expect(applySpan.status).toEqual({ code: SpanStatusCode.ERROR, message: 'EIO' });
    const [event] = applySpan.events;
    expect(event!.name).toBe('exception');
    expect(hrTimeToMilliseconds(event!.time)).toBeLessThanOrEqual(after + 1);
  });

  it('a batch runs by itself after its delay, or at once when it is full', () => {
    jest.useFakeTimers();
    const obs = new AgentObserver('n1', 'east', { batchSpans: true });
    const applyOnce = (n: number) => {
      folded(obs, n);
      const a = obs.beginApply(n);
      a.compileStarted();
      a.compiled({});
      a.submitted(outcome(n));
    };
    applyOnce(1);
    expect(exporter.getFinishedSpans()).toEqual([]);
    jest.advanceTimersByTime(1000);
    expect(exporter.getFinishedSpans().filter((s) => s.name === 'mesh.revision.apply')).toHaveLength(1);

    exporter.reset();
    for (let n = 2; n < 2 + 64; n++) applyOnce(n);
    expect(exporter.getFinishedSpans().filter((s) => s.name === 'mesh.revision.apply')).toHaveLength(64);
  });
});
