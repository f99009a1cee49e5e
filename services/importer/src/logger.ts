export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogSink = (line: Record<string, unknown>) => void;

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** JSON lines on stdout, one object per line. */
export const stdoutSink: LogSink = (line) => {
  process.stdout.write(`${JSON.stringify(line)}\n`);
};

export type Logger = Record<LogLevel, (msg: string, fields?: Record<string, unknown>) => void>;

export function createLogger(
  level: LogLevel,
  base: Record<string, unknown>,
  sink: LogSink = stdoutSink,
): Logger {
  const write =
    (lvl: LogLevel) =>
    (msg: string, fields: Record<string, unknown> = {}) => {
      if (RANK[lvl] >= RANK[level])
        sink({ time: new Date().toISOString(), level: lvl, msg, ...base, ...fields });
    };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}

export function errorFields(err: unknown): Record<string, unknown> {
  return err instanceof Error ? { error: err.message, errorName: err.name } : { error: String(err) };
}
