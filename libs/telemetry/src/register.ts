import { startTelemetry, type TelemetryProfile } from './sdk';
import { tracingSettings } from './settings';

/**
 * What the register-<service> entry points share. A bad OTEL_* value is reported like any other
 * configuration error (exit 2), before the service loads anything else.
 */
export function registerFromEnv(defaultServiceName: string, profile: TelemetryProfile): void {
  try {
    startTelemetry(tracingSettings(process.env, defaultServiceName), profile);
  } catch (err) {
    process.stderr.write(
      `${JSON.stringify({ time: new Date().toISOString(), level: 'error', msg: 'invalid configuration', service: defaultServiceName, error: (err as Error).message })}\n`,
    );
    process.exit(2);
  }
}
