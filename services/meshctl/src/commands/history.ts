import { DEFAULT_NAMESPACE } from '@meshplane/domain';
import type { Command } from 'commander';
import { type Context, intParser, type OutputFormat, outputOption } from '../context';
import { UsageError } from '../errors';
import { resourceHistoryTable, revisionsTable, toJson, toYaml } from '../format';
import { kindsHelp, resolveKind } from '../kinds';

interface HistoryOptions {
  from?: number;
  limit?: number;
  namespace?: string;
  output: OutputFormat;
}

/** Without --from, history shows the latest revisions: this many unless --limit says otherwise. */
export const DEFAULT_RECENT = 50;

export function registerHistory(program: Command, ctx: Context): void {
  program
    .command('history')
    .description('list revisions (the latest ones unless --from is given), or the history of one resource')
    .argument('[kind]', `with a name: the history of that resource; ${kindsHelp()}`)
    .argument('[name]', 'resource name')
    .option('--from <n>', 'first revision to list (oldest first from there)', intParser(1))
    .option(
      '--limit <n>',
      `how many revisions (default ${DEFAULT_RECENT}, or 100 with --from; max 1000)`,
      intParser(1),
    )
    .option('-n, --namespace <namespace>', 'namespace of the resource', DEFAULT_NAMESPACE)
    .addOption(outputOption())
    .action(
      async (kindArg: string | undefined, name: string | undefined, opts: HistoryOptions, cmd: Command) => {
        const client = ctx.client(cmd);
        const show = (value: unknown, table: () => string) =>
          ctx.io.out(
            opts.output === 'json' ? toJson(value) : opts.output === 'yaml' ? toYaml(value) : table(),
          );

        if (kindArg !== undefined) {
          if (name === undefined) throw new UsageError('history of a resource needs both a kind and a name');
          const ref = { kind: resolveKind(kindArg), namespace: opts.namespace ?? DEFAULT_NAMESPACE, name };
          const { items } = await client.resourceHistory(ref);
          show(items, () => resourceHistoryTable(items));
          return;
        }

        let from = opts.from;
        const limit = Math.min(opts.limit ?? (from === undefined ? DEFAULT_RECENT : 100), 1000);
        if (from === undefined) from = Math.max(1, (await client.head()) - limit + 1);
        const page = await client.revisions(from, limit);
        if (opts.output !== 'table') {
          show(page, () => '');
          return;
        }
        if (page.items.length === 0) {
          ctx.io.err(
            page.headRevision === 0
              ? 'No revisions yet.\n'
              : `No revisions from ${from} (head is ${page.headRevision}).\n`,
          );
          return;
        }
        ctx.io.out(revisionsTable(page.items));
        const first = page.items[0]!.revision;
        if (page.next !== null) ctx.io.err(`more: meshctl history --from ${page.next}\n`);
        else if (first > 1 && opts.from === undefined)
          ctx.io.err(`older: meshctl history --from ${Math.max(1, first - limit)} --limit ${limit}\n`);
      },
    );
}
