/** Small pieces of the propagation benchmark: commit validation, loopback checks, log counting, the wire observer. */
import { randomBytes } from 'node:crypto';
import { validateChangeSet } from '@meshplane/domain';
import { readRevisionHeaders, revisionSubject } from '@meshplane/messaging';
import type { Msg, MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../../services/agent/src';
import { nowMs } from '../lib';

export const validate = (
  view: Parameters<typeof validateChangeSet>[0],
  effective: Parameters<typeof validateChangeSet>[1],
) => validateChangeSet(view, effective, (i) => `apply[${i}]`);

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function traceparent(): string {
  return `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
}

/** Traffic stays on loopback: refuse any other NATS or Postgres host. */
export function assertLoopback(url: string, what: string): void {
  for (const one of url.split(',')) {
    const host = new URL(one.trim()).hostname;
    if (!(host === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(host)))
      throw new Error(`${what} must be on 127.0.0.0/8 for this benchmark, got ${host}`);
  }
}

/** Warnings and errors of the in-process services, counted; the first few kept for the report. */
export class LogCounter {
  lines = 0;
  warnings = 0;
  errors = 0;
  readonly first: string[] = [];
  sink = (line: Record<string, unknown>) => {
    this.lines++;
    JSON.stringify(line); // production writes it as one JSON line; the encoding is part of the cost
    if (line.level === 'warn' || line.level === 'error')
      this.note(String(line.level), String(line.msg), line);
  };
  logger: Logger = {
    info: () => {
      this.lines++;
    },
    warn: (m, f) => this.note('warn', m, f),
    error: (m, f) => this.note('error', m, f),
  };
  private note(level: string, msg: string, fields?: Record<string, unknown>): void {
    if (level === 'warn') this.warnings++;
    else this.errors++;
    if (this.first.length < 10)
      this.first.push(`${level} ${msg} ${fields ? JSON.stringify(fields).slice(0, 300) : ''}`);
  }
}

/** A core subscriber on the revision subject: when each revision was on the wire, and its size. */
export class Observer {
  readonly seen = new Map<number, number>();
  last: { data: Uint8Array; headers: MsgHdrs | undefined } | undefined;
  private readonly sub: ReturnType<NatsConnection['subscribe']>;
  constructor(nc: NatsConnection, cluster: string) {
    this.sub = nc.subscribe(revisionSubject(cluster), {
      callback: (_err, m: Msg) => {
        const at = nowMs();
        const rev = readRevisionHeaders(m.headers).revision;
        if (rev === undefined) return;
        this.seen.set(rev, at);
        this.last = { data: m.data.slice(), headers: m.headers };
      },
    });
  }
  async when(revision: number, timeoutMs = 5_000): Promise<number | undefined> {
    const end = nowMs() + timeoutMs;
    while (!this.seen.has(revision) && nowMs() < end) await sleep(1);
    return this.seen.get(revision);
  }
  close(): void {
    this.sub.unsubscribe();
  }
}
