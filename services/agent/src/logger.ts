export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** JSON lines on stdout, one object per line, with `base` fields (node, cluster) on each. */
export function consoleLogger(
  base: Record<string, unknown>,
  write = (line: string) => process.stdout.write(line),
): Logger {
  const emit = (level: LogLevel, msg: string, fields: Record<string, unknown> = {}) =>
    write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...base, ...fields })}\n`);
  return {
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}

/** Discards everything (tests that assert on status, not on logs). */
export const silentLogger: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };
