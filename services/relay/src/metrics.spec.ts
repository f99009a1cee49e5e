import type { ChangeSet } from '@meshplane/event-store';
import { revisionHeaders } from '@meshplane/messaging';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { RelayMetrics, startPublishTrace } from './metrics';

const exporter = new InMemorySpanExporter();
beforeAll(() => {
  new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).register();
});
afterEach(() => exporter.reset());

const STORED = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

const cs = (traceContext: string | null): ChangeSet => ({
  revision: 3,
  changeId: 'c3',
  cluster: 'east',
  actor: 'test',
  reason: 'test',
  requestId: null,
  idempotencyKey: null,
  traceContext,
  restoredFromRevision: null,
  metadata: {},
  createdAt: new Date(Date.now() - 20),
  eventCount: 2,
  prevHash: '',
  hash: 'h',
  events: [],
});

describe('startPublishTrace', () => {
  it('is a producer span under the stored context, whose traceparent the message carries', () => {
    const t = startPublishTrace(cs(STORED), 'east', 'MESH_EAST');
    const h = revisionHeaders('east', cs(STORED), t.context);
    t.acked(false);
    const [span] = exporter.getFinishedSpans();
    expect(span).toMatchObject({ name: 'mesh.revision.publish', kind: SpanKind.PRODUCER });
    expect(span!.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
    expect(span!.attributes).toMatchObject({
      'mesh.revision': 3,
      'mesh.cluster': 'east',
      'mesh.duplicate': false,
    });
    const sc = span!.spanContext();
    expect(h.get('traceparent')).toBe(`00-${sc.traceId}-${sc.spanId}-01`);
  });

  it('a failed publish is an error span', () => {
    startPublishTrace(cs(STORED), 'east', 'MESH_EAST').failed(new Error('timeout'));
    expect(exporter.getFinishedSpans()[0]!.status).toEqual({ code: 2, message: 'timeout' });
  });

  it('a change set without a stored context starts no trace and sends none', () => {
    const t = startPublishTrace(cs(null), 'east', 'MESH_EAST');
    t.acked(false);
    expect(t.context).toBeUndefined();
    expect(exporter.getFinishedSpans()).toEqual([]);
    expect(revisionHeaders('east', cs(null), t.context).has('traceparent')).toBe(false);
  });
});

describe('RelayMetrics.renderPrometheus', () => {
  it('renders head, published revision, lag and the commit-to-publish histogram per cluster', () => {
    const m = new RelayMetrics('east');
    m.setRole('leader');
    m.setHead(5);
    m.setCheckpoint(2);
    m.published(3, false, new Date(Date.now() - 50));
    const text = m.renderPrometheus();
    for (const line of [
      'mesh_relay_leader{cluster="east"} 1',
      'mesh_relay_head_revision{cluster="east"} 5',
      'mesh_relay_published_revision{cluster="east"} 3',
      'mesh_relay_lag_revisions{cluster="east"} 2',
      'mesh_relay_published_total{cluster="east"} 1',
      'mesh_relay_publish_seconds_count{cluster="east"} 1',
    ])
      expect(text.split('\n')).toContain(line);
  });
});
