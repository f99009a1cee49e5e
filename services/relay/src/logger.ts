export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogSink = (line: Record<string, unknown>) => void;

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** JSON lines on stdout: one object per line, machine-readable first. */
export const stdoutSink: LogSink = (line) => {
  process.stdout.write(`${JSON.stringify(line)}\n`);
};

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  enabled(level: LogLevel): boolean;
}

/** A logger whose lines all carry `base` (service, cluster, instance), filtered by level. */
export function createLogger(
  level: LogLevel,
  base: Record<string, unknown>,
  sink: LogSink = stdoutSink,
): Logger {
  const min = RANK[level];
  const write = (lvl: LogLevel, msg: string, fields: Record<string, unknown> = {}) => {
    if (RANK[lvl] < min) return;
    sink({ time: new Date().toISOString(), level: lvl, msg, ...base, ...fields });
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    enabled: (lvl) => RANK[lvl] >= min,
  };
}

/** The message and code of any thrown value, for a log line (never the stack of a known failure). */
export function errorFields(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { error: String(err) };
  const code = (err as { code?: unknown }).code;
  const cause = err.cause instanceof Error ? err.cause.message : undefined;
  return {
    error: err.message,
    ...(code !== undefined ? { code } : {}),
    ...(cause && cause !== err.message ? { cause } : {}),
  };
}
