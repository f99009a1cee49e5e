import type { Command } from 'commander';
import { type Context, intParser, type OutputFormat, outputOption } from '../context';
import { UsageError } from '../errors';
import { auditTable, toJson, toYaml } from '../format';
import { resolveKind } from '../kinds';

interface AuditOptions {
  actor?: string;
  kind?: string;
  namespace?: string;
  name?: string;
  since?: string;
  until?: string;
  type?: string;
  limit?: number;
  output: OutputFormat;
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * `--since`/`--until`: an ISO-8601 time (`2024-05-01`, `2024-05-01T12:00:00Z`)
 * or a duration back from now (`90s`, `15m`, `2h`, `7d`).
 */
export function parseTime(value: string, flag: string, now: Date = new Date()): string {
  const rel = /^(\d{1,9})([smhd])$/.exec(value.trim());
  if (rel) return new Date(now.getTime() - Number(rel[1]) * UNIT_MS[rel[2]!]!).toISOString();
  if (/^\d{4}-\d{2}-\d{2}/.test(value) && !Number.isNaN(Date.parse(value))) return value;
  throw new UsageError(
    `${flag} must be an ISO-8601 time (2024-05-01T12:00:00Z) or a duration like 15m, 2h, 7d; got "${value}"`,
  );
}

export function registerAudit(program: Command, ctx: Context): void {
  program
    .command('audit')
    .description('the audit trail: every change set and token change, oldest first')
    .option('--actor <name>', 'only this actor (token name)')
    .option('--kind <kind>', 'only change sets touching this kind')
    .option('-n, --namespace <namespace>', 'only change sets touching this namespace')
    .option('--name <name>', 'only change sets touching a resource of this name')
    .option('--since <time>', 'from this time: ISO-8601 or a duration ago (15m, 2h, 7d)')
    .option('--until <time>', 'up to this time: ISO-8601 or a duration ago')
    .option('--type <type>', 'change or token')
    .option('--limit <n>', 'at most this many entries (default 100, max 1000)', intParser(1))
    .addOption(outputOption())
    .action(async (opts: AuditOptions, cmd: Command) => {
      if (opts.type !== undefined && opts.type !== 'change' && opts.type !== 'token')
        throw new UsageError(`--type must be change or token, got "${opts.type}"`);
      const filter: Record<string, string | number | undefined> = {
        actor: opts.actor,
        kind: opts.kind === undefined ? undefined : resolveKind(opts.kind),
        namespace: opts.namespace,
        name: opts.name,
        since: opts.since === undefined ? undefined : parseTime(opts.since, '--since'),
        until: opts.until === undefined ? undefined : parseTime(opts.until, '--until'),
        type: opts.type,
        limit: opts.limit,
      };
      const { items } = await ctx.client(cmd).audit(filter);
      if (opts.output === 'json') ctx.io.out(toJson(items));
      else if (opts.output === 'yaml') ctx.io.out(toYaml(items));
      else if (items.length === 0) ctx.io.err('No audit entries match.\n');
      else ctx.io.out(auditTable(items));
    });
}
