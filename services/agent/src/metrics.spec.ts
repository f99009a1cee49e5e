import { type MapBackend, MemoryMapBackend } from '@meshplane/dataplane';
import type { ChangeSet } from '@meshplane/event-store';
import { headers } from '@meshplane/messaging';
import { SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { AgentObserver } from './metrics';

// The SDK's own in-memory exporter: real spans, read back without a collector.
const exporter = new InMemorySpanExporter();
beforeAll(() => {
  // Registers the provider, the W3C propagator and the async-hooks context manager globally.
  new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).register();
});
afterEach(() => exporter.reset());

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const tp = (span: string) => `00-${TRACE_ID}-${span}-01`;
const PUBLISH_4 = '00f067aa0ba902b4';
const PUBLISH_5 = '00f067aa0ba902b5';

function revision(n: number, committedAt = new Date()): ChangeSet {
  return {
    revision: n,
    changeId: `c${n}`,
    cluster: 'east',
    actor: 'test',
    reason: 'test',
    requestId: null,
    idempotencyKey: null,
    traceContext: null,
    restoredFromRevision: null,
    metadata: {},
    createdAt: committedAt,
    eventCount: 0,
    prevHash: '',
    hash: '',
    events: [],
  };
}

function withTraceparent(value: string) {
  const h = headers();
  h.set('traceparent', value);
  return h;
}

const byName = (spans: ReadableSpan[], name: string) => spans.filter((s) => s.name === name);
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

describe('AgentObserver', () => {
  it('one apply span for coalesced revisions: parent = newest publish span, links to the older ones', async () => {
    const obs = new AgentObserver('n1', 'east');
    const backend = obs.wrap(await MemoryMapBackend.open());
    obs.received(4);
    obs.received(5);
    obs.foldedRevision(revision(4), () => withTraceparent(tp(PUBLISH_4)));
    obs.foldedRevision(revision(5), () => withTraceparent(tp(PUBLISH_5)));
    const apply = obs.beginApply(5);
    apply.compileStarted();
    apply.compiled({ 'mesh.full_compile': false });
    await backend.update('mesh_id_names', [[new Uint8Array(4), new Uint8Array(64)]]);
    const outcome = {
      ok: true,
      kind: 'apply' as const,
      revision: 5,
      ops: 1,
      batches: 1,
      durationMs: 2,
      at: Date.now(),
      attempt: 0,
    };
    obs.outcome(outcome);
    apply.submitted(outcome);

    const spans = exporter.getFinishedSpans();
    const [span] = byName(spans, 'mesh.revision.apply');
    expect(span!.spanContext().traceId).toBe(TRACE_ID);
    expect(parentOf(span!)).toBe(PUBLISH_5);
    expect(span!.links.map((l) => [l.context.spanId, l.attributes?.['mesh.revision']])).toEqual([
      [PUBLISH_4, 4],
    ]);
    expect(span!.attributes).toMatchObject({
      'mesh.revision': 5,
      'mesh.node': 'n1',
      'mesh.cluster': 'east',
      'mesh.coalesced_revisions': 2,
      'mesh.first_revision': 4,
      'mesh.ops': 1,
    });
    const own = span!.spanContext().spanId;
    for (const name of ['mesh.compile', 'mesh.diff', 'mesh.map.write'])
      expect({ name, parent: parentOf(byName(spans, name)[0]!) }).toEqual({ name, parent: own });
    expect(byName(spans, 'mesh.map.write')[0]!.attributes['mesh.ops.mesh_id_names']).toBe(1);

    const text = obs.render();
    expect(text).toContain('mesh_applied_revision{node="n1",cluster="east"} 5');
    expect(text).toContain('mesh_head_revision{node="n1",cluster="east"} 5');
    expect(text).toContain('mesh_propagation_seconds_count{node="n1",cluster="east"} 2');
    expect(text).toContain(
      'mesh_map_ops_total{node="n1",cluster="east",map="mesh_id_names",action="update"} 1',
    );
  });

  it("the wrapper keeps a backend's byte-string batch paths (and counts them), and adds none to one without", async () => {
    const calls: string[] = [];
    const inner = await MemoryMapBackend.open();
    const withStrings = Object.assign(Object.create(inner) as typeof inner, {
      updateStrings: async (map: string, keys: readonly string[], values: readonly string[]) => {
        calls.push(`update ${map} ${keys.join(',')}=${values.join(',')}`);
      },
      deleteStrings: async (map: string, keys: readonly string[]) => {
        calls.push(`delete ${map} ${keys.join(',')}`);
      },
      readStrings: async (map: string) => {
        calls.push(`read ${map}`);
        return [['k', 'v'] as const];
      },
    });
    const obs = new AgentObserver('n3', 'east');
    const wrapped = obs.wrap(withStrings);
    await wrapped.updateStrings!('mesh_slots', ['00', '01'], ['aa', 'bb']);
    await wrapped.deleteStrings!('mesh_slots', ['02']);
    expect([...(await wrapped.readStrings!('mesh_slots'))]).toEqual([['k', 'v']]);
    expect(calls).toEqual(['update mesh_slots 00,01=aa,bb', 'delete mesh_slots 02', 'read mesh_slots']);
    const text = obs.render();
    expect(text).toContain('mesh_map_ops_total{node="n3",cluster="east",map="mesh_slots",action="update"} 2');
    expect(text).toContain('mesh_map_ops_total{node="n3",cluster="east",map="mesh_slots",action="delete"} 1');
    const bare: MapBackend = {
      kind: 'bare',
      lookup: (m, k) => inner.lookup(m, k),
      iterate: (m) => inner.iterate(m),
      update: (m, e) => inner.update(m, e),
      delete: (m, k) => inner.delete(m, k),
      readMeta: () => inner.readMeta(),
      writeMeta: (meta) => inner.writeMeta(meta),
      close: () => inner.close(),
    };
    const plain = obs.wrap(bare);
    expect(plain.updateStrings).toBeUndefined();
    expect(plain.deleteStrings).toBeUndefined();
    expect(plain.readStrings).toBeUndefined();
  });

  it('a failed apply: error status and exception on the apply and map-write spans; counted', async () => {
    const obs = new AgentObserver('n2', 'east');
    obs.foldedRevision(revision(7), () => withTraceparent(tp(PUBLISH_4)));
    const apply = obs.beginApply(7);
    apply.compileStarted();
    apply.compiled({});
    const mem = await MemoryMapBackend.open();
    mem.injectFault({ map: 'mesh_services', code: 'EIO' });
    const backend = obs.wrap(mem);
    await expect(
      backend.update('mesh_services', [[new Uint8Array(8), new Uint8Array(16)]]),
    ).rejects.toThrow();
    const error = 'update mesh_services: EIO (injected fault), 0 applied';
    const outcome = {
      ok: false,
      kind: 'apply' as const,
      revision: 7,
      ops: 0,
      batches: 1,
      durationMs: 1,
      at: Date.now(),
      attempt: 0,
      error,
      retryInMs: 100,
    };
    obs.outcome(outcome);
    apply.submitted(outcome);

    const spans = exporter.getFinishedSpans();
    for (const name of ['mesh.revision.apply', 'mesh.map.write']) {
      const s = byName(spans, name)[0]!;
      expect({ name, status: s.status }).toEqual({
        name,
        status: { code: SpanStatusCode.ERROR, message: error },
      });
      expect(s.events.map((e) => e.name)).toEqual(['exception']);
    }
    expect(obs.render()).toContain('mesh_apply_errors_total{node="n2",cluster="east"} 1');
    // Not applied: no propagation sample yet.
    expect(obs.render()).not.toContain('mesh_propagation_seconds_count');
  });

  it('a compile failure ends the compile and apply spans with the error; no parent without a traceparent', () => {
    const obs = new AgentObserver('n1', 'east');
    obs.foldedRevision(revision(9), () => headers());
    const apply = obs.beginApply(9);
    apply.compileStarted();
    apply.failed(new Error('reading the maps back failed'));
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => [s.name, s.status.code])).toEqual([
      ['mesh.compile', SpanStatusCode.ERROR],
      ['mesh.revision.apply', SpanStatusCode.ERROR],
    ]);
    expect(parentOf(byName(spans, 'mesh.revision.apply')[0]!)).toBeUndefined();
  });

  it('revisions committed before the agent started (catch-up) are not propagation samples', () => {
    const obs = new AgentObserver('n1', 'east');
    obs.foldedRevision(revision(1, new Date(Date.now() - 3_600_000)), () => undefined);
    obs.outcome({
      ok: true,
      kind: 'apply',
      revision: 1,
      ops: 0,
      batches: 0,
      durationMs: 0,
      at: Date.now(),
      attempt: 0,
    });
    expect(obs.render()).not.toContain('mesh_propagation_seconds_count');
    expect(obs.render()).toContain('mesh_applied_revision{node="n1",cluster="east"} 1');
  });
});
