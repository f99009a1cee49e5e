import type { Command } from 'commander';
import { isUnchanged, type RollbackDryRunResponse, type WriteResponse } from '../api-types';
import { type Context, intParser, type OutputFormat, outputOption } from '../context';
import { diffText, eventAction, toJson, toYaml } from '../format';

interface RollbackOptions {
  to: number;
  reason?: string;
  dryRun?: boolean;
  expectedRevision?: number;
  idempotencyKey?: string;
  output: OutputFormat;
}

function isDryRun(r: WriteResponse | RollbackDryRunResponse): r is RollbackDryRunResponse {
  return (r as RollbackDryRunResponse).dryRun === true;
}

export function registerRollback(program: Command, ctx: Context): void {
  program
    .command('rollback')
    .description('restore the state of a past revision, as a new revision (history is never rewritten)')
    .requiredOption('--to <revision>', 'the revision whose state to restore', intParser(1))
    .option(
      '--reason <text>',
      'why: recorded in the audit log (default $MESH_REASON; required unless --dry-run)',
    )
    .option('--dry-run', 'show what the rollback would change; write nothing')
    .option(
      '--expected-revision <n>',
      'fail with a conflict unless the head is still this revision',
      intParser(0),
    )
    .option(
      '--idempotency-key <key>',
      'key that makes a repeated rollback a no-op (default: a fresh one per run)',
    )
    .addOption(outputOption())
    .action(async (opts: RollbackOptions, cmd: Command) => {
      const client = ctx.client(cmd);
      // A dry run writes nothing, but the API still asks for a reason: say what it is.
      const reason = opts.dryRun
        ? opts.reason || ctx.io.env.MESH_REASON || 'meshctl rollback --dry-run'
        : ctx.reason(opts.reason, 'rollback');
      const body = {
        toRevision: opts.to,
        reason,
        ...(opts.dryRun ? { dryRun: true } : {}),
        ...(opts.expectedRevision !== undefined ? { expectedRevision: opts.expectedRevision } : {}),
      };
      const res = await client.rollback(
        body,
        opts.dryRun ? undefined : ctx.idempotencyKey(opts.idempotencyKey),
      );
      const r = res.body;
      if (opts.output !== 'table') {
        ctx.io.out(opts.output === 'json' ? toJson(r) : toYaml(r));
        return;
      }
      if (isDryRun(r)) {
        if (r.unchanged)
          ctx.io.out(
            `revision ${r.fromRevision} already has the state of revision ${r.toRevision}; nothing to roll back\n`,
          );
        else
          ctx.io.out(
            `dry run: rolling back from revision ${r.fromRevision} to the state of revision ${r.toRevision} would change:\n` +
              `${diffText(r.diff)}nothing written\n`,
          );
        return;
      }
      if (isUnchanged(r)) {
        ctx.io.out(
          `the head (revision ${r.revision}) already has the state of revision ${opts.to}; nothing written\n`,
        );
        return;
      }
      for (const e of r.events) ctx.io.out(`${e.kind} ${e.namespace}/${e.name} ${eventAction(e)}\n`);
      ctx.io.out(
        `rolled back to the state of revision ${r.restoredFromRevision ?? opts.to} as new revision ${r.revision} ` +
          `(${r.events.length} ${r.events.length === 1 ? 'event' : 'events'})\n`,
      );
    });
}
