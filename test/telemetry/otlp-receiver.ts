import http from 'node:http';
import type { AddressInfo } from 'node:net';

/*
 * A small OTLP/HTTP trace receiver on loopback, for OTEL_EXPORTER_OTLP_PROTOCOL=http/json: it
 * decodes ExportTraceServiceRequest JSON (ids are hex in OTLP/JSON) into flat spans with their
 * resource's service name, and answers 200 with an empty ExportTraceServiceResponse.
 */

export type AttrValue = string | number | boolean | undefined;

export interface ReceivedSpan {
  service: string;
  resource: Record<string, AttrValue>;
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, AttrValue>;
  status: { code: number; message?: string };
  links: Array<{ traceId: string; spanId: string; attributes: Record<string, AttrValue> }>;
  events: Array<{ name: string; attributes: Record<string, AttrValue> }>;
}

interface OtlpKeyValue {
  key: string;
  value?: { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean };
}

function attrs(list: OtlpKeyValue[] | undefined): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const kv of list ?? []) {
    const v = kv.value ?? {};
    out[kv.key] =
      v.stringValue ??
      (v.intValue !== undefined ? Number(v.intValue) : undefined) ??
      v.doubleValue ??
      v.boolValue;
  }
  return out;
}

/** OTLP/JSON ids are hex; an empty parent means a root span. */
const id = (v: unknown): string | undefined =>
  typeof v === 'string' && v !== '' ? v.toLowerCase() : undefined;

export interface OtlpReceiver {
  readonly endpoint: string;
  readonly spans: ReceivedSpan[];
  /** Requests that could not be decoded (a protocol mismatch fails the test, not silently). */
  readonly rejected: string[];
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const rejected: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        rejected.push(`${req.method} ${req.url}`);
        res.writeHead(404).end();
        return;
      }
      try {
        // biome-ignore lint/suspicious/noExplicitAny: OTLP JSON, read field by field below
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as any;
        for (const rs of body.resourceSpans ?? []) {
          const resource = attrs(rs.resource?.attributes);
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              spans.push({
                service: String(resource['service.name']),
                resource,
                name: s.name,
                traceId: id(s.traceId)!,
                spanId: id(s.spanId)!,
                parentSpanId: id(s.parentSpanId),
                kind: s.kind ?? 0,
                startNs: BigInt(s.startTimeUnixNano ?? 0),
                endNs: BigInt(s.endTimeUnixNano ?? 0),
                attributes: attrs(s.attributes),
                status: {
                  code: s.status?.code ?? 0,
                  ...(s.status?.message ? { message: s.status.message } : {}),
                },
                // biome-ignore lint/suspicious/noExplicitAny: see above
                links: (s.links ?? []).map((l: any) => ({
                  traceId: id(l.traceId)!,
                  spanId: id(l.spanId)!,
                  attributes: attrs(l.attributes),
                })),
                // biome-ignore lint/suspicious/noExplicitAny: see above
                events: (s.events ?? []).map((e: any) => ({ name: e.name, attributes: attrs(e.attributes) })),
              });
            }
          }
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      } catch (err) {
        rejected.push(`${req.headers['content-type']}: ${(err as Error).message}`);
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    rejected,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Every span of one trace, by span id. */
export function traceOf(spans: ReceivedSpan[], traceId: string): Map<string, ReceivedSpan> {
  return new Map(spans.filter((s) => s.traceId === traceId).map((s) => [s.spanId, s]));
}

/** The chain of ancestors of `span` inside `trace` (nearest first). */
export function ancestors(trace: Map<string, ReceivedSpan>, span: ReceivedSpan): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (let p = span.parentSpanId; p !== undefined; ) {
    const parent = trace.get(p);
    if (!parent) break;
    out.push(parent);
    p = parent.parentSpanId;
  }
  return out;
}
