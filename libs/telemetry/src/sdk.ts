import type { TracingSettings } from './settings';

/** The instrumentations a service wants; each is loaded only when tracing is on. */
export type InstrumentationName = 'http' | 'express' | 'nestjs' | 'pg';

export interface TelemetryHandle {
  readonly settings: TracingSettings;
  /** Flushes buffered spans and stops the SDK; a no-op when tracing is off. */
  shutdown(): Promise<void>;
}

/** Requests that are not worth a trace: scrapes and probes would drown the changes. */
const QUIET_PATHS = /^\/(metrics|healthz|readyz|livez)(\?|$)/;

let current: TelemetryHandle | undefined;

/** The handle of the SDK this process started (main uses it to flush on shutdown). */
export function telemetry(): TelemetryHandle | undefined {
  return current;
}

/**
 * Starts the OpenTelemetry NodeSDK once per process, before the instrumented modules are loaded
 * (the register-* entry points run this as the first import of each service's main). With
 * tracing off nothing is even required: the SDK's packages stay unloaded and the API is a no-op.
 */
export function startTelemetry(
  settings: TracingSettings,
  instrumentations: InstrumentationName[],
): TelemetryHandle {
  if (current) return current;
  if (!settings.enabled) {
    current = { settings, shutdown: async () => undefined };
    return current;
  }
  // Loaded lazily so that a service without a collector never pays for the SDK's start-up.
  const { NodeSDK } = require('@opentelemetry/sdk-node') as typeof import('@opentelemetry/sdk-node');
  const { W3CTraceContextPropagator } =
    require('@opentelemetry/core') as typeof import('@opentelemetry/core');
  const { resourceFromAttributes } =
    require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
  const { ConsoleSpanExporter } =
    require('@opentelemetry/sdk-trace-base') as typeof import('@opentelemetry/sdk-trace-base');

  const attributes: Record<string, string> = { 'service.name': settings.serviceName };
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
    instrumentations: loadInstrumentations(instrumentations),
  });
  sdk.start();
  let stopped: Promise<void> | undefined;
  current = {
    settings,
    shutdown: () => {
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
        }),
      );
    } else if (name === 'express') {
      const { ExpressInstrumentation, ExpressLayerType } =
        require('@opentelemetry/instrumentation-express') as typeof import('@opentelemetry/instrumentation-express');
      // Middleware spans (json parser, auth...) cost more than they tell; the route handler span stays.
      out.push(new ExpressInstrumentation({ ignoreLayersType: [ExpressLayerType.MIDDLEWARE] }));
    } else if (name === 'nestjs') {
      const { NestInstrumentation } =
        require('@opentelemetry/instrumentation-nestjs-core') as typeof import('@opentelemetry/instrumentation-nestjs-core');
      out.push(new NestInstrumentation());
    } else {
      const { PgInstrumentation } =
        require('@opentelemetry/instrumentation-pg') as typeof import('@opentelemetry/instrumentation-pg');
      // Only queries inside a traced operation: polls, NOTIFY listens and health checks are not changes.
      out.push(new PgInstrumentation({ requireParentSpan: true, ignoreConnectSpans: true }));
    }
  }
  return out;
}
