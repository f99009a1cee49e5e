import type { Command } from 'commander';
import { type Context, type OutputFormat, outputOption, parseRevisionArg } from '../context';
import { changeSetText, toJson, toYaml } from '../format';

export function registerShow(program: Command, ctx: Context): void {
  program
    .command('show')
    .description('show one revision: who, when, why, its hash, and its events')
    .argument('<revision>', 'revision number')
    .addOption(outputOption())
    .action(async (revArg: string, opts: { output: OutputFormat }, cmd: Command) => {
      const rev = parseRevisionArg(revArg, 'REVISION');
      const cs = await ctx.client(cmd).revision(rev);
      ctx.io.out(
        opts.output === 'json' ? toJson(cs) : opts.output === 'yaml' ? toYaml(cs) : changeSetText(cs),
      );
    });
}
