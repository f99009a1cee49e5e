import { ConfigError } from '@meshplane/config';

export type OtlpProtocol = 'http/protobuf' | 'http/json';

/** What the standard OTEL_* variables ask for; read once, at start-up, before anything is loaded. */
export interface TracingSettings {
  enabled: boolean;
  /** Why tracing is on or off (logged once at start-up). */
  reason: string;
  serviceName: string;
  exporter: 'otlp' | 'console' | 'none';
  protocol: OtlpProtocol;
  /** MESH_CLUSTER / MESH_NODE as resource attributes (unvalidated: the service's config checks them). */
  cluster?: string;
  node?: string;
}

const EXPORTERS = new Set(['otlp', 'console', 'none']);
const PROTOCOLS = new Set<string>(['http/protobuf', 'http/json']);
const SAMPLERS = new Set([
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
]);

const blank = (v: string | undefined) => v === undefined || v.trim() === '';

/**
 * Tracing is on only when an exporter is configured (OTEL_TRACES_EXPORTER, or an OTLP endpoint),
 * and never with OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none: a service nobody points at
 * a collector pays for the no-op API only. Unsupported values fail start-up (ConfigError) instead
 * of the SDK's log-and-ignore.
 */
export function tracingSettings(env: NodeJS.ProcessEnv, defaultServiceName: string): TracingSettings {
  const problems: string[] = [];
  const exporterList = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const e of exporterList)
    if (!EXPORTERS.has(e))
      problems.push(`OTEL_TRACES_EXPORTER: unsupported exporter "${e}" (otlp, console or none)`);
  if (exporterList.includes('none') && exporterList.length > 1)
    problems.push('OTEL_TRACES_EXPORTER: "none" cannot be combined with other exporters');
  const protocol = blank(env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL)
    ? (env.OTEL_EXPORTER_OTLP_PROTOCOL ?? '').trim() || 'http/protobuf'
    : env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL!.trim();
  if (!PROTOCOLS.has(protocol))
    problems.push(
      `OTEL_EXPORTER_OTLP_PROTOCOL: unsupported protocol "${protocol}" (http/protobuf or http/json)`,
    );
  const sampler = env.OTEL_TRACES_SAMPLER?.trim();
  if (sampler && !SAMPLERS.has(sampler))
    problems.push(`OTEL_TRACES_SAMPLER: unknown sampler "${sampler}" (${[...SAMPLERS].join(', ')})`);
  for (const name of ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']) {
    const v = env[name];
    if (blank(v)) continue;
    try {
      const u = new URL(v!);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
    } catch {
      problems.push(`${name}: must be an http:// or https:// URL`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const serviceName = env.OTEL_SERVICE_NAME?.trim() || defaultServiceName;
  const base = {
    serviceName,
    protocol: protocol as OtlpProtocol,
    ...(env.MESH_CLUSTER ? { cluster: env.MESH_CLUSTER } : {}),
    ...(env.MESH_NODE ? { node: env.MESH_NODE } : {}),
  };
  const off = (reason: string): TracingSettings => ({ ...base, enabled: false, exporter: 'none', reason });
  if (/^true$/i.test(env.OTEL_SDK_DISABLED?.trim() ?? '')) return off('OTEL_SDK_DISABLED=true');
  if (exporterList.includes('none')) return off('OTEL_TRACES_EXPORTER=none');
  const endpoint = !blank(env.OTEL_EXPORTER_OTLP_ENDPOINT) || !blank(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  if (exporterList.length === 0 && !endpoint)
    return off('no exporter configured (set OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_TRACES_EXPORTER)');
  const exporter = exporterList.includes('console') && !exporterList.includes('otlp') ? 'console' : 'otlp';
  return {
    ...base,
    enabled: true,
    exporter,
    reason: `${exporter} exporter${exporter === 'otlp' ? ` (${protocol})` : ''}`,
  };
}
