import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ValidationError } from '@meshplane/domain';
import { Command, CommanderError, Option } from 'commander';
import { ApiError, DEFAULT_SERVER, TransportError } from './client';
import { registerApply } from './commands/apply';
import { registerAudit } from './commands/audit';
import { registerDelete } from './commands/delete';
import { registerDiff } from './commands/diff';
import { registerFederation } from './commands/federation';
import { registerGet } from './commands/get';
import { registerHistory } from './commands/history';
import { registerRollback } from './commands/rollback';
import { registerShow } from './commands/show';
import { registerStatus } from './commands/status';
import { registerTrace } from './commands/trace';
import { registerVerify } from './commands/verify';
import { registerWait } from './commands/wait';
import { Context, type Io, secondsParser } from './context';
import { annotationOf, CommandFailed, EXIT_OK, EXIT_USAGE, InputError, UsageError } from './errors';
import { clean, detailLines } from './format';

/** The version in the package.json above this file (source or dist layout). */
export function readVersion(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file)) {
      try {
        const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === 'meshplane' && pkg.version) return pkg.version;
      } catch {
        // not ours; keep looking
      }
    }
    dir = path.dirname(dir);
  }
  return '0.0.0';
}

const ENVIRONMENT_HELP = `
Environment:
  MESH_SERVER   API address (default ${DEFAULT_SERVER}); --server wins
  MESH_TOKEN    bearer token; --token wins (prefer the variable: arguments show up in ps)
  MESH_REASON   reason for writes when --reason is not given
  MESH_TIMEOUT  timeout per request, e.g. 30 or 30s (default 30s)

Exit codes: 0 success, 1 refused by the server / unreachable / bad input, 2 usage error.
diff: 0 no differences, 1 differences, 2 error. wait: 0 applied, 1 timed out.`;

export function buildProgram(ctx: Context): Command {
  const program = new Command('meshctl');
  program
    .description('Command-line client of the Meshplane control plane')
    .version(ctx.version, '-V, --version')
    .option('-s, --server <url>', `API address (env MESH_SERVER, default ${DEFAULT_SERVER})`)
    .option('-t, --token <token>', 'bearer token (env MESH_TOKEN)')
    .addOption(
      new Option(
        '--timeout <duration>',
        'per-request timeout: 30, 30s, 500ms, 2m (env MESH_TIMEOUT, default 30s); for `wait`, the whole wait',
      ).argParser(secondsParser),
    )
    .configureOutput({
      writeOut: (s) => ctx.io.out(s),
      writeErr: (s) => ctx.io.err(s),
    })
    .configureHelp({ showGlobalOptions: true })
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .showSuggestionAfterError(true)
    .addHelpText('after', ENVIRONMENT_HELP);
  // Subcommands inherit the output and exit settings above (copyInheritedSettings).
  registerApply(program, ctx);
  registerDelete(program, ctx);
  registerGet(program, ctx);
  registerHistory(program, ctx);
  registerShow(program, ctx);
  registerDiff(program, ctx);
  registerRollback(program, ctx);
  registerAudit(program, ctx);
  registerVerify(program, ctx);
  registerTrace(program, ctx);
  registerStatus(program, ctx);
  registerWait(program, ctx);
  registerFederation(program, ctx);
  return program;
}

/** Prints an error the way operators need it: the server's message, then each field path. */
export function describeError(err: unknown): { text: string; usage: boolean } {
  const lines: string[] = [];
  let usage = false;
  const annotate = annotationOf(err);
  if (err instanceof ApiError) {
    lines.push(`error: ${clean(err.message)} [${err.status} ${clean(err.code)}]`);
    lines.push(...detailLines(err.details, annotate));
    if (err.status === 401) lines.push('hint: pass a valid token with --token or MESH_TOKEN');
    if (err.status === 409 && err.headRevision !== undefined)
      lines.push(`hint: the head is now revision ${err.headRevision}; re-read the state and retry`);
    if (err.status === 413) lines.push('hint: split the input into smaller change sets');
  } else if (err instanceof ValidationError) {
    lines.push(`error: ${clean(err.message)}`);
    lines.push(...detailLines(err.details, annotate));
  } else if (err instanceof TransportError) {
    lines.push(`error: ${clean(err.message)}`);
    if (err.reason === 'connect') lines.push('hint: is the API running? set --server or MESH_SERVER');
  } else if (err instanceof InputError) {
    lines.push(`error: ${err.location ? `${clean(err.location)}: ` : ''}${clean(err.message)}`);
  } else if (err instanceof UsageError) {
    usage = true;
    lines.push(`error: ${clean(err.message)}`, '(add --help for usage)');
  } else if (err instanceof CommandFailed) {
    lines.push(`error: ${clean(err.message)}`);
  } else {
    lines.push(
      `error: unexpected failure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
    );
  }
  return { text: `${lines.join('\n')}\n`, usage };
}

/** Runs one meshctl command line (without `node meshctl`); resolves to the exit code. */
export async function run(argv: string[], io: Io): Promise<number> {
  const ctx = new Context(io, readVersion());
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ctx.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and --version exit 0; anything else commander rejects is a usage error (already printed).
      return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    const { text, usage } = describeError(err);
    io.err(text);
    if (usage) return EXIT_USAGE;
    if (err instanceof CommandFailed && ctx.errorExitCode === 1) return err.exitCode;
    return ctx.errorExitCode;
  }
}
