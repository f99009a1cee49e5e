import { type Command, InvalidArgumentError, Option } from 'commander';
import type { NodeItem, NodesResponse } from '../api-types';
import { ApiError, TransportError } from '../client';
import { type Context, type GlobalOptions, intParser, parseDurationMs } from '../context';
import { EXIT_FAILURE } from '../errors';
import { clean } from '../format';
import { fetchNodes, formatAge } from './status';

export const DEFAULT_WAIT_MS = 30_000;
export const DEFAULT_INTERVAL_MS = 500;
const MIN_POLL_MS = 250;

/** `--interval`: 10 ms to 1 min; a bare number is seconds, as everywhere else in meshctl. */
export function intervalParser(value: string): number {
  const ms = parseDurationMs(value);
  if (ms === undefined || ms < 10 || ms > 60_000)
    throw new InvalidArgumentError(`must be a duration between 10ms and 1m (500ms, 2s), got "${value}"`);
  return ms;
}

export interface WaitVerdict {
  /** Every online node has applied the revision, and at least one node is online. */
  done: boolean;
  online: NodeItem[];
  /** Online nodes below the revision (STALE or ERROR ones). */
  lagging: NodeItem[];
  offline: NodeItem[];
}

/**
 * OFFLINE nodes are not waited for: a node that is down cannot hold up a rollout, just as
 * `kubectl rollout status` does not wait for pods on a dead node. With no node online at all
 * there is nothing to confirm, so that is not done: a pipeline gating on propagation must not
 * pass because every agent is down. ERROR nodes are still waited for: the agent retries, and the
 * apply may well succeed before the timeout.
 */
export function evaluate(r: NodesResponse, revision: number): WaitVerdict {
  const online = r.items.filter((n) => n.state !== 'OFFLINE');
  const offline = r.items.filter((n) => n.state === 'OFFLINE');
  const lagging = online.filter((n) => n.appliedRevision < revision);
  return { done: online.length > 0 && lagging.length === 0, online, lagging, offline };
}

/** `500ms`, `1.5s`, `30s`, `2m`: the --timeout as given back to the operator. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${Math.round(ms / 100) / 10}s`;
  return formatAge(ms / 1000);
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
const names = (nodes: NodeItem[]) => nodes.map((n) => clean(n.node)).join(', ');

export function successText(revision: number, v: WaitVerdict): string {
  const skipped = v.offline.length
    ? ` (${plural(v.offline.length, 'offline node')} not counted: ${names(v.offline)})`
    : '';
  return `revision ${revision} is applied on all ${plural(v.online.length, 'online node')}${skipped}\n`;
}

/** What a script's log needs after a timeout: which nodes lag, and why the ERROR ones fail. */
export function timeoutText(
  revision: number | undefined,
  waitedMs: number,
  v: WaitVerdict | undefined,
  lastError: string | undefined,
): string {
  const what = revision === undefined ? 'the head revision' : `revision ${revision}`;
  const lines = [
    `error: timed out after ${formatDuration(waitedMs)} waiting for ${what} on every online node`,
  ];
  if (v) {
    if (v.online.length === 0) {
      lines.push(
        v.offline.length === 0
          ? '  no node has reported status'
          : `  no node is online (${v.offline.length} offline: ${names(v.offline)})`,
      );
    }
    for (const n of v.lagging) {
      const why = n.state === 'ERROR' ? `: ${clean(n.lastError ?? n.message ?? 'error')}` : '';
      const failed =
        n.state === 'ERROR' && n.failedRevision !== null ? ` (failed revision ${n.failedRevision})` : '';
      lines.push(`  ${clean(n.node)}: ${n.state} at revision ${n.appliedRevision}${failed}${why}`);
    }
    if (v.online.length > 0 && v.offline.length > 0)
      lines.push(`  not counted (OFFLINE): ${names(v.offline)}`);
  }
  if (lastError) lines.push(`  last error: ${clean(lastError)}`);
  return `${lines.join('\n')}\n`;
}

/** Errors worth polling through (API restarting, NATS away); anything else ends the wait at once. */
function transient(err: unknown): string | undefined {
  if (err instanceof ApiError && err.status >= 500) return `${err.message} [${err.status} ${err.code}]`;
  if (err instanceof TransportError && err.reason !== 'protocol') return err.message;
  return undefined;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function registerWait(program: Command, ctx: Context): void {
  program
    .command('wait')
    .description('wait until every online node has applied a revision: exit 0, or 1 on timeout')
    .option('--revision <n>', 'the revision to wait for (default: the head when wait starts)', intParser(0))
    .addOption(
      new Option('--interval <duration>', 'pause between polls')
        .argParser(intervalParser)
        .default(DEFAULT_INTERVAL_MS, '500ms'),
    )
    .addHelpText(
      'after',
      '\n--timeout <duration> (default 30s) bounds the whole wait, e.g. `meshctl wait --revision 7 --timeout 2m`.\n' +
        'OFFLINE nodes are not waited for, but at least one node must be online; ERROR nodes are waited\n' +
        'for (the agent retries), and their errors are printed on timeout. As `kubectl wait`, for CI gates.\n',
    )
    .action(async (opts: { revision?: number; interval: number }, cmd: Command) => {
      // The global --timeout is the deadline of the whole wait here; MESH_TIMEOUT stays per request.
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const waitMs = g.timeout !== undefined ? g.timeout * 1000 : DEFAULT_WAIT_MS;
      const deadline = Date.now() + waitMs;
      let revision = opts.revision;
      let verdict: WaitVerdict | undefined;
      let lastError: string | undefined;
      let noted = false;
      for (;;) {
        // Each poll ends by the deadline, so a hung API cannot stretch the wait; the last one, at
        // the deadline, still gets a moment to answer instead of failing a healthy API.
        const timeoutMs = Math.max(MIN_POLL_MS, deadline - Date.now());
        const client = ctx.client(cmd, { timeoutMs, retries: 0 });
        try {
          const r = await fetchNodes(client);
          lastError = undefined;
          revision ??= r.headRevision;
          if (revision > r.headRevision && !noted) {
            noted = true;
            ctx.io.err(
              `note: revision ${revision} is not committed yet (head is ${r.headRevision}); waiting\n`,
            );
          }
          verdict = evaluate(r, revision);
          if (verdict.done) {
            ctx.io.out(successText(revision, verdict));
            return;
          }
        } catch (err) {
          const why = transient(err);
          if (why === undefined) throw err;
          lastError = why;
        }
        const remaining = deadline - Date.now();
        if (remaining <= 0) break;
        await sleep(Math.min(opts.interval, remaining));
      }
      ctx.io.err(timeoutText(revision, waitMs, verdict, lastError));
      ctx.exitCode = EXIT_FAILURE;
    });
}
