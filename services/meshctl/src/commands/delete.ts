import { DEFAULT_NAMESPACE, refKey } from '@meshplane/domain';
import type { Command } from 'commander';
import { isUnchanged } from '../api-types';
import { type Context, intParser } from '../context';
import { annotateError, CommandFailed } from '../errors';
import { kindsHelp, resolveKind } from '../kinds';

interface DeleteOptions {
  namespace?: string;
  reason?: string;
  expectedRevision?: number;
  idempotencyKey?: string;
  ignoreNotFound?: boolean;
}

export function registerDelete(program: Command, ctx: Context): void {
  program
    .command('delete')
    .description('delete resources of one kind by name, all in one revision')
    .argument('<kind>', `resource kind: ${kindsHelp()}`)
    .argument('<names...>', 'resource names')
    .option('-n, --namespace <namespace>', 'namespace', DEFAULT_NAMESPACE)
    .option('--reason <text>', 'why: recorded in the audit log (default $MESH_REASON; required)')
    .option(
      '--expected-revision <n>',
      'fail with a conflict unless the head is still this revision',
      intParser(0),
    )
    .option(
      '--idempotency-key <key>',
      'key that makes a repeated delete a no-op (default: a fresh one per run)',
    )
    .option('--ignore-not-found', 'succeed when a resource does not exist')
    .action(async (kindArg: string, names: string[], opts: DeleteOptions, cmd: Command) => {
      const kind = resolveKind(kindArg);
      const client = ctx.client(cmd);
      const reason = ctx.reason(opts.reason, 'delete');
      const refs = names.map((name) => ({ kind, namespace: opts.namespace ?? DEFAULT_NAMESPACE, name }));
      const body = {
        reason,
        apply: [],
        delete: refs,
        ...(opts.expectedRevision !== undefined ? { expectedRevision: opts.expectedRevision } : {}),
      };
      let res: Awaited<ReturnType<typeof client.changes>>;
      try {
        res = await client.changes(body, ctx.idempotencyKey(opts.idempotencyKey));
      } catch (err) {
        throw annotateError(err, (path) => {
          const m = /^delete\[(\d+)\]/.exec(path);
          const ref = m ? refs[Number(m[1])] : undefined;
          return ref ? `${ref.kind} ${ref.namespace}/${ref.name}` : undefined;
        });
      }
      const deleted = new Set(isUnchanged(res.body) ? [] : res.body.events.map(refKey));
      const missing: string[] = [];
      for (const r of refs) {
        const what = `${r.kind} ${r.namespace}/${r.name}`;
        if (deleted.has(refKey(r))) ctx.io.out(`${what} deleted\n`);
        else missing.push(what);
      }
      if (!isUnchanged(res.body)) ctx.io.out(`deleted as revision ${res.body.revision}\n`);
      if (missing.length === 0) return;
      const message = `${missing.join(', ')} not found at revision ${res.body.revision}`;
      if (opts.ignoreNotFound) ctx.io.out(`${message}; nothing to delete\n`);
      else throw new CommandFailed(`${message} (pass --ignore-not-found to accept that)`);
    });
}
