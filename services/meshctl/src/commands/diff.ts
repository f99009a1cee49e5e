import type { Command } from 'commander';
import { type Context, type OutputFormat, outputOption, parseRevisionArg } from '../context';
import { EXIT_FAILURE, EXIT_USAGE } from '../errors';
import { diffText, toJson, toYaml } from '../format';

export function registerDiff(program: Command, ctx: Context): void {
  program
    .command('diff')
    .description(
      'what changed between two revisions (exit 0: none, 1: differences, 2: error, as kubectl diff)',
    )
    .argument('<from>', 'older revision (0 is the empty mesh)')
    .argument('[to]', 'newer revision (default: the head)')
    .addOption(outputOption())
    .hook('preAction', () => {
      // kubectl diff semantics: 1 means "there are differences", so errors must exit above 1.
      ctx.errorExitCode = EXIT_USAGE;
    })
    .action(
      async (fromArg: string, toArg: string | undefined, opts: { output: OutputFormat }, cmd: Command) => {
        const from = parseRevisionArg(fromArg, 'FROM');
        const client = ctx.client(cmd);
        const to = toArg === undefined ? await client.head() : parseRevisionArg(toArg, 'TO');
        const d = await client.diff(from, to);
        if (opts.output === 'json') ctx.io.out(toJson(d));
        else if (opts.output === 'yaml') ctx.io.out(toYaml(d));
        else ctx.io.out(`diff of revision ${d.from} -> ${d.to}\n${diffText(d)}`);
        if (d.added.length + d.removed.length + d.changed.length > 0) ctx.exitCode = EXIT_FAILURE;
      },
    );
}
