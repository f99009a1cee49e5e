import { Inject, Injectable } from '@nestjs/common';
import type { ApiConfig } from '../config';

export const API_CONFIG = Symbol('API_CONFIG');

export type LogSink = (line: Record<string, unknown>) => void;

/** JSON lines on stdout: one object per line, machine-readable first. */
export const stdoutSink: LogSink = (line) => {
  process.stdout.write(`${JSON.stringify(line)}\n`);
};

/** Structured log lines outside requests (start-up, bootstrap, shutdown), to the same sink. */
@Injectable()
export class ApiLogger {
  readonly sink: LogSink;

  constructor(@Inject(API_CONFIG) config: ApiConfig) {
    this.sink = config.logSink ?? stdoutSink;
  }

  log(level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
    this.sink({ time: new Date().toISOString(), level, msg, ...fields });
  }
}
