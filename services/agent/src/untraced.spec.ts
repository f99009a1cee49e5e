import type { ChangeSet } from '@meshplane/event-store';
import { headers } from '@meshplane/messaging';
import { tracerRegistered } from '@meshplane/telemetry';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { AgentObserver } from './metrics';

// Each spec file has its own globals: no tracer provider is registered here until the last test.

const revision = (n: number) => ({ revision: n, createdAt: new Date(), events: [] }) as unknown as ChangeSet;

describe('an agent without a tracer provider', () => {
  it('never decodes a revision message headers; once a provider is registered it does', () => {
    expect(tracerRegistered()).toBe(false);
    const obs = new AgentObserver('n1', 'east');
    let reads = 0;
    const lazy = () => {
      reads++;
      const h = headers();
      h.set('traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b4-01');
      return h;
    };
    obs.foldedRevision(revision(1), lazy);
    obs.foldedRevision(revision(2), lazy);
    obs.beginApply(2);
    expect(reads).toBe(0);

    new NodeTracerProvider({
      spanProcessors: [new SimpleSpanProcessor(new InMemorySpanExporter())],
    }).register();
    expect(tracerRegistered()).toBe(true);
    obs.foldedRevision(revision(3), lazy);
    obs.foldedRevision(revision(4), lazy);
    obs.beginApply(4);
    expect(reads).toBe(2); // the parent (4) and the link (3)
  });
});
