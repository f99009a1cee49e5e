import { z } from 'zod';

/**
 * What every service needs to read its environment once, at start-up, with
 * errors that name each bad variable. No I/O beyond the env object passed in.
 */
export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/meshplane';
export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** An integer variable within [min, max]. */
export const intEnv = (name: string, min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `${name} must be an integer between ${min} and ${max}`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `${name} must be an integer between ${min} and ${max}`);

/** A URL (or a comma-separated list of them, as NATS takes) with one of `protocols`. */
export const urlEnv = (name: string, protocols: string[]) =>
  z.string().refine(
    (v) =>
      v.split(',').every((one) => {
        try {
          return protocols.includes(new URL(one.trim()).protocol);
        } catch {
          return false;
        }
      }),
    `${name} must be a ${protocols.map((p) => `${p}//`).join(' or ')} URL`,
  );

/** Cluster names end up in stream, subject and bucket names: a DNS-1123 label. */
export const clusterEnv = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'MESH_CLUSTER must be a DNS-1123 label')
  .max(63, 'MESH_CLUSTER must be at most 63 characters')
  .default('local');

/** Parses `env` with `schema`; empty strings count as unset, as in most deployment tools. */
/** MESH_LOG_LEVEL of the services that log JSON lines: debug, info (default), warn or error. */
export const logLevelEnv = z
  .enum(['debug', 'info', 'warn', 'error'], 'MESH_LOG_LEVEL must be debug, info, warn or error')
  .default('info');

export function parseEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv): z.output<S> {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const r = schema.safeParse(cleaned);
  if (!r.success) {
    throw new ConfigError(
      r.error.issues.map((i) => {
        const name = String(i.path[0] ?? 'environment');
        return i.message.startsWith(name) ? i.message : `${name}: ${i.message}`;
      }),
    );
  }
  return r.data;
}

/** Redacts passwords of a URL (or a comma-separated list) for logs and error bodies. */
export function redactUrl(value: string): string {
  return value
    .split(',')
    .map((one) => {
      try {
        const u = new URL(one.trim());
        if (u.password) u.password = '***';
        return u.toString();
      } catch {
        return '(unparseable url)';
      }
    })
    .join(',');
}

export * from './lifecycle';
