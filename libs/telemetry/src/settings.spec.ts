import { ConfigError } from '@meshplane/config';
import { tracingSettings } from './settings';

const on = (env: NodeJS.ProcessEnv) => tracingSettings(env, 'meshplane-test');

describe('tracingSettings', () => {
  it('is off without an exporter or endpoint', () => {
    expect(on({})).toMatchObject({ enabled: false, serviceName: 'meshplane-test' });
  });

  it('is on with an OTLP endpoint; the protocol defaults to http/protobuf', () => {
    expect(on({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' })).toMatchObject({
      enabled: true,
      exporter: 'otlp',
      protocol: 'http/protobuf',
    });
  });

  it('honours http/json, the service name and the mesh resource attributes', () => {
    expect(
      on({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_SERVICE_NAME: 'agent-a',
        MESH_CLUSTER: 'east',
        MESH_NODE: 'n1',
      }),
    ).toMatchObject({
      enabled: true,
      protocol: 'http/json',
      serviceName: 'agent-a',
      cluster: 'east',
      node: 'n1',
    });
  });

  it('is off with OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none, endpoint or not', () => {
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' };
    expect(on({ ...endpoint, OTEL_SDK_DISABLED: 'true' })).toMatchObject({ enabled: false });
    expect(on({ ...endpoint, OTEL_TRACES_EXPORTER: 'none' })).toMatchObject({ enabled: false });
  });

  it('is on with OTEL_TRACES_EXPORTER=console alone', () => {
    expect(on({ OTEL_TRACES_EXPORTER: 'console' })).toMatchObject({ enabled: true, exporter: 'console' });
  });

  it('rejects unsupported values, naming each variable', () => {
    try {
      on({
        OTEL_TRACES_EXPORTER: 'zipkin',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_TRACES_SAMPLER: 'sometimes',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://x',
      });
      throw new Error('expected a ConfigError');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const problems = (err as ConfigError).problems.join('\n');
      for (const name of [
        'OTEL_TRACES_EXPORTER',
        'OTEL_EXPORTER_OTLP_PROTOCOL',
        'OTEL_TRACES_SAMPLER',
        'OTEL_EXPORTER_OTLP_ENDPOINT',
      ])
        expect(problems).toContain(name);
    }
  });
});
