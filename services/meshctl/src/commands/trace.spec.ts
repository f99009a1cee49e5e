import { run } from '../cli';
import { captureIo, fakeServer } from '../testing/fake-io';
import { bar, formatLatency, type PropagationResponse, traceWaterfall } from './trace';

const T0 = Date.parse('2024-05-01T12:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';

const response = (over: Partial<PropagationResponse> = {}): PropagationResponse => ({
  revision: 12,
  committedAt: at(0),
  publishedAt: at(10),
  publishLatencyMs: 10,
  traceId: TRACE,
  nodes: [
    { node: 'n2', state: 'APPLIED', appliedRevision: 12, appliedAt: at(40), latencyMs: 40, detail: null },
    { node: 'n1', state: 'APPLIED', appliedRevision: 12, appliedAt: at(20), latencyMs: 20, detail: null },
    {
      node: 'n3',
      state: 'ERROR',
      appliedRevision: 11,
      appliedAt: null,
      latencyMs: null,
      detail: 'revision 12 failed to apply: update mesh_services: EIO',
    },
  ],
  ...over,
});

describe('waterfall formatting', () => {
  test('latencies', () => {
    expect(formatLatency(0)).toBe('0ms');
    expect(formatLatency(850.4)).toBe('850ms');
    expect(formatLatency(1250)).toBe('1.25s');
    expect(formatLatency(2000)).toBe('2s');
    expect(formatLatency(125_000)).toBe('2m5s');
    expect(formatLatency(null)).toBe('');
  });

  test('bars start at `from`, end at `to`, and are never empty', () => {
    expect(bar(0, 40, 40, 8)).toBe('████████');
    expect(bar(10, 20, 40, 8)).toBe('  ██    ');
    expect(bar(0, 0, 40, 8)).toBe('█       ');
    expect(bar(40, 40, 40, 8)).toBe('       █');
  });

  test('committed, published, then nodes by apply latency, the failed one last with its reason', () => {
    expect(traceWaterfall(response(), 8)).toBe(
      [
        `revision 12  trace ${TRACE}`,
        '  committed   |█       |  2024-05-01T12:00:00.000Z',
        '  published   |██      |  +10ms',
        '  n1 applied  |  ██    |  +20ms',
        '  n2 applied  |  ██████|  +40ms',
        '  n3 error    |        |  ERROR: revision 12 failed to apply: update mesh_services: EIO',
        '  2/3 nodes applied; scale: 8 cells = 40ms',
        `  open in Jaeger or Tempo: trace id ${TRACE}`,
        '',
      ].join('\n'),
    );
  });

  test('received steps when the API reports them; an unpublished revision and no trace id', () => {
    const text = traceWaterfall(
      response({
        publishedAt: null,
        publishLatencyMs: null,
        traceId: null,
        nodes: [
          {
            node: 'n1',
            state: 'APPLIED',
            appliedRevision: 12,
            appliedAt: at(100),
            latencyMs: 100,
            receivedAt: at(60),
            detail: null,
          },
        ],
      }),
      10,
    );
    expect(text).toContain('revision 12  trace (none: written with tracing off)');
    expect(text).toContain('  published    |          |  not published yet');
    expect(text).toContain('  n1 received  |██████    |  +60ms');
    expect(text).toContain('  n1 applied   |      ████|  +100ms (apply 40ms)');
    expect(text).not.toContain('open in Jaeger');
  });
});

describe('meshctl trace', () => {
  test('GETs the propagation of the revision and prints the waterfall; -o json passes it through', async () => {
    const server = fakeServer(() => ({ status: 200, body: response() }));
    const io = captureIo({ fetch: server.fetch });
    expect(await run(['trace', '12'], io)).toBe(0);
    expect(server.requests.map((r) => `${r.method} ${r.url.pathname}`)).toEqual([
      'GET /v1/revisions/12/propagation',
    ]);
    expect(io.stdout).toContain(`trace ${TRACE}`);
    expect(io.stdout).toContain('n3 error');

    const json = captureIo({ fetch: server.fetch });
    expect(await run(['trace', '12', '-o', 'json'], json)).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ revision: 12, traceId: TRACE });
  });

  test('a revision that is not a number is a usage error (exit 2), nothing is requested', async () => {
    const server = fakeServer(() => ({ status: 200, body: response() }));
    const io = captureIo({ fetch: server.fetch });
    expect(await run(['trace', 'latest'], io)).toBe(2);
    expect(io.stderr).toMatch(/REVISION must be a revision number/);
    expect(server.requests).toEqual([]);
  });
});
