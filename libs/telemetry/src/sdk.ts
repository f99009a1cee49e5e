import type { TracingSettings } from './settings';

/** The instrumentations a service wants; each is loaded only when tracing is on. */
export type InstrumentationName = 'http' | 'pg';

/**
 * What one service needs from the SDK. The active context is always carried by SyncContextManager:
 * every service gives its spans their parents explicitly, so none pays async_hooks' cost per promise.
 */
export interface TelemetryProfile {
  instrumentations: InstrumentationName[];
}

export interface TelemetryHandle {
  readonly settings: TracingSettings;
  /** Flushes buffered spans and stops the SDK; a no-op when tracing is off. */
  shutdown(): Promise<void>;
}

/** Requests that are not worth a trace: scrapes and probes would drown the changes. */
const QUIET_PATHS = /^\/(metrics|healthz|readyz|livez)(\?|$)/;

let current: TelemetryHandle | undefined;

const blank = (v: string | undefined) => v === undefined || v.trim() === '';

/** Work deferred by the service that must reach the SDK before its last export (see below). */
const beforeShutdown: Array<() => void> = [];

/** The handle of the SDK this process started (main uses it to flush on shutdown). */
export function telemetry(): TelemetryHandle | undefined {
  return current;
}

/** True when this process started the SDK with tracing on. */
export function tracingEnabled(): boolean {
  return current?.settings.enabled === true;
}

/** Runs `flush` at shutdown before the SDK flushes, e.g. to create spans a service deferred. */
export function beforeTelemetryShutdown(flush: () => void): void {
  beforeShutdown.push(flush);
}

/**
 * Starts the OpenTelemetry NodeSDK once per process, before the instrumented modules are loaded
 * (the register-* entry points run this as the first import of each service's main). With
 * tracing off nothing is even required: the SDK's packages stay unloaded and the API is a no-op.
 */
export function startTelemetry(settings: TracingSettings, profile: TelemetryProfile): TelemetryHandle {
  if (current) return current;
  if (!settings.enabled) {
    current = { settings, shutdown: async () => undefined };
    return current;
  }
  // Loaded lazily so that a service without a collector never pays for the SDK's start-up.
  const { NodeSDK } = require('@opentelemetry/sdk-node') as typeof import('@opentelemetry/sdk-node');
  const { W3CTraceContextPropagator } =
    require('@opentelemetry/core') as typeof import('@opentelemetry/core');
  const { resourceFromAttributes, envDetector, processDetector } =
    require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
  const { ConsoleSpanExporter } =
    require('@opentelemetry/sdk-trace-base') as typeof import('@opentelemetry/sdk-trace-base');

  const attributes: Record<string, string> = {
    'service.name': settings.serviceName,
    'host.name': require('node:os').hostname(),
  };
  if (settings.cluster) attributes['mesh.cluster'] = settings.cluster;
  if (settings.node) attributes['mesh.node'] = settings.node;

  // The exporters read OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT/HEADERS/TIMEOUT themselves.
  const traceExporter =
    settings.exporter === 'console'
      ? new ConsoleSpanExporter()
      : settings.protocol === 'http/json'
        ? new (
            require('@opentelemetry/exporter-trace-otlp-http') as typeof import('@opentelemetry/exporter-trace-otlp-http')
          ).OTLPTraceExporter()
        : new (
            require('@opentelemetry/exporter-trace-otlp-proto') as typeof import('@opentelemetry/exporter-trace-otlp-proto')
          ).OTLPTraceExporter();

  const sdk = new NodeSDK({
    serviceName: settings.serviceName,
    resource: resourceFromAttributes(attributes),
    traceExporter,
    textMapPropagator: new W3CTraceContextPropagator(),
    instrumentations: loadInstrumentations(profile.instrumentations),
    // Left to itself the SDK also exports OTLP metrics and logs (its default exporter for both):
    // Meshplane's metrics are Prometheus on /metrics, so only an explicit OTEL_*_EXPORTER turns them on.
    ...(blank(process.env.OTEL_METRICS_EXPORTER) ? { metricReaders: [] } : {}),
    ...(blank(process.env.OTEL_LOGS_EXPORTER) ? { logRecordProcessors: [] } : {}),
    // The host detector reads host.id asynchronously, and every exported batch waits on it.
    ...(blank(process.env.OTEL_NODE_RESOURCE_DETECTORS)
      ? { resourceDetectors: [envDetector, processDetector] }
      : {}),
    contextManager: new (require('./sync-context') as typeof import('./sync-context')).SyncContextManager(),
  });
  sdk.start();
  let stopped: Promise<void> | undefined;
  current = {
    settings,
    shutdown: () => {
      for (const flush of beforeShutdown.splice(0)) {
        try {
          flush();
        } catch {
          // A span that cannot be built is not a reason to lose the others.
        }
      }
      stopped ??= sdk.shutdown().catch(() => undefined);
      return stopped;
    },
  };
  return current;
}

function loadInstrumentations(names: InstrumentationName[]) {
  const out = [];
  for (const name of names) {
    if (name === 'http') {
      const { HttpInstrumentation } =
        require('@opentelemetry/instrumentation-http') as typeof import('@opentelemetry/instrumentation-http');
      out.push(
        new HttpInstrumentation({
          ignoreIncomingRequestHook: (req) => QUIET_PATHS.test(req.url ?? ''),
          // Outgoing calls outside a trace (NATS is not http; the agent's snapshot fetch is undici).
          requireParentforOutgoingSpans: true,
          // `POST /v1/changes` and http.route from the route Express matched, when the response is done.
          applyCustomAttributesOnSpan: (span, request) => {
            const route = (request as { route?: { path?: unknown } }).route?.path;
            if (typeof route !== 'string') return;
            span.updateName(`${(request as { method?: string }).method ?? 'GET'} ${route}`);
            span.setAttribute('http.route', route);
          },
        }),
      );
    } else {
      const { PgInstrumentation } =
        require('@opentelemetry/instrumentation-pg') as typeof import('@opentelemetry/instrumentation-pg');
      // Only queries inside a traced operation: polls, NOTIFY listens and health checks are not changes.
      out.push(new PgInstrumentation({ requireParentSpan: true, ignoreConnectSpans: true }));
    }
  }
  return out;
}
