import type { Command } from 'commander';
import { type Context, intParser, type OutputFormat, outputOption } from '../context';
import { EXIT_FAILURE } from '../errors';
import { toJson, toYaml, verifyText } from '../format';

export function registerVerify(program: Command, ctx: Context): void {
  program
    .command('verify')
    .description('recompute the hash chain of the change log (exit 1 when it is broken)')
    .option('--from <n>', 'first revision to check', intParser(1))
    .option('--to <n>', 'last revision to check', intParser(1))
    .addOption(outputOption())
    .action(async (opts: { from?: number; to?: number; output: OutputFormat }, cmd: Command) => {
      const v = await ctx.client(cmd).verify(opts.from, opts.to);
      ctx.io.out(opts.output === 'json' ? toJson(v) : opts.output === 'yaml' ? toYaml(v) : verifyText(v));
      if (!v.ok) ctx.exitCode = EXIT_FAILURE;
    });
}
