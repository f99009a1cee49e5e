import { randomUUID } from 'node:crypto';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { type ClientOptions, DEFAULT_SERVER, DEFAULT_TIMEOUT_MS, type FetchLike, MeshClient } from './client';
import { UsageError } from './errors';
import { OUTPUT_FORMATS, type OutputFormat } from './format';

/** The outside world of one meshctl run; the real one is in main.ts, tests pass fakes. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  readStdin(): Promise<string>;
  env: Record<string, string | undefined>;
  fetch?: FetchLike;
}

export interface GlobalOptions {
  server?: string;
  token?: string;
  timeout?: number;
}

/** What every command gets: output streams and a client built from the global options and env. */
export class Context {
  /** Set by a command that finished but wants a non-zero exit (diff found differences, verify failed). */
  exitCode = 0;
  /** Exit code for errors; `diff` raises it to 2 (kubectl diff: 1 means "differences"). */
  errorExitCode = 1;

  constructor(
    readonly io: Io,
    readonly version: string,
  ) {}

  /** `overrides` let a polling command (wait) bound each request by its own deadline. */
  client(cmd: Command, overrides: Pick<ClientOptions, 'timeoutMs' | 'retries'> = {}): MeshClient {
    const g = cmd.optsWithGlobals<GlobalOptions>();
    const env = this.io.env;
    const server = g.server ?? (env.MESH_SERVER || DEFAULT_SERVER);
    const token = g.token ?? (env.MESH_TOKEN || undefined);
    let timeoutMs = DEFAULT_TIMEOUT_MS;
    if (g.timeout !== undefined) timeoutMs = g.timeout * 1000;
    else if (env.MESH_TIMEOUT) timeoutMs = parseSeconds(env.MESH_TIMEOUT, 'MESH_TIMEOUT') * 1000;
    return new MeshClient({
      server,
      token,
      timeoutMs,
      userAgent: `meshctl/${this.version}`,
      ...(this.io.fetch ? { fetch: this.io.fetch } : {}),
      ...overrides,
    });
  }

  /** A reason for a write: `--reason`, else MESH_REASON; there is no silent default. */
  reason(given: string | undefined, what: string): string {
    const reason = given ?? this.io.env.MESH_REASON;
    if (reason === undefined || reason.trim() === '')
      throw new UsageError(
        `${what} needs a reason, which the audit log records: pass --reason "why" or set MESH_REASON`,
      );
    return reason;
  }

  /** Idempotency key for a write: the given one, else a fresh one per run (so client retries are safe). */
  idempotencyKey(given: string | undefined): string {
    return given ?? `meshctl-${randomUUID()}`;
  }
}

/** `30`, `30s`, `1.5s`, `500ms`, `2m` in milliseconds (a bare number is seconds); undefined if malformed. */
export function parseDurationMs(value: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value);
  if (!m) return undefined;
  const scale = m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000;
  return Number(m[1]) * scale;
}

function parseSeconds(value: string, name: string): number {
  const ms = parseDurationMs(value);
  if (ms === undefined || !(ms > 0) || ms > 3_600_000)
    throw new UsageError(
      `${name} must be a duration between 0 and 3600 seconds (30, 30s, 500ms, 2m), got "${value}"`,
    );
  return ms / 1000;
}

/** Commander parser for a non-negative integer option or argument (`min` and up). */
export function intParser(min: number): (value: string) => number {
  return (value: string) => {
    if (!/^\d{1,15}$/.test(value) || Number(value) < min)
      throw new InvalidArgumentError(`must be an integer >= ${min}, got "${value}"`);
    return Number(value);
  };
}

export function secondsParser(value: string): number {
  try {
    return parseSeconds(value, '--timeout');
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** Parses a revision argument; usage error (exit 2) when it is not a positive integer. */
export function parseRevisionArg(value: string, name: string): number {
  if (!/^\d{1,15}$/.test(value)) throw new UsageError(`${name} must be a revision number, got "${value}"`);
  return Number(value);
}

export function outputOption(): Option {
  return new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS).default('table');
}

export type { OutputFormat };

/** Collects a repeatable option (`-f a -f b`). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
