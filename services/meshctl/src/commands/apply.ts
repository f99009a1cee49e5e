import {
  applyChanges,
  type Change,
  DEFAULT_NAMESPACE,
  diffStates,
  type ErrorDetail,
  type MeshState,
  parseResource,
  refKey,
  ValidationError,
  validateChangeSet,
  viewOf,
} from '@meshplane/domain';
import type { Command } from 'commander';
import { isUnchanged, type StoredResource, type WireEvent } from '../api-types';
import { TransportError } from '../client';
import { type Context, collect, intParser } from '../context';
import { type Annotate, annotateError, CommandFailed, InputError } from '../errors';
import { clean, diffText, eventAction } from '../format';
import { lookupKind } from '../kinds';
import { loadManifests, type ManifestDoc, withNamespace } from '../manifests';

const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

/** `Kind namespace/name` of a document, as far as it says. */
function describe(doc: Record<string, unknown>): string {
  const kind = str(doc.kind) ?? '?';
  return `${kind} ${str(doc.namespace) ?? DEFAULT_NAMESPACE}/${str(doc.name) ?? '?'}`;
}

/**
 * Points `apply[i]...` detail paths at the file and line of document i. Manifests
 * must spell kinds exactly (aliases are for the command line): say which one was meant.
 */
export function annotateApply(docs: ManifestDoc[]): Annotate {
  return (path) => {
    const m = /^apply\[(\d+)\]/.exec(path);
    const doc = m ? docs[Number(m[1])] : undefined;
    if (!doc) return undefined;
    const kind = str(doc.value.kind);
    const meant = kind === undefined ? undefined : lookupKind(kind);
    const hint = meant && meant !== kind && path.endsWith('.kind') ? `; write kind: ${meant}` : '';
    return `${doc.source}, ${describe(doc.value)}${hint}`;
  };
}

function keyOf(doc: Record<string, unknown>): string {
  return `${str(doc.kind)}/${str(doc.namespace) ?? DEFAULT_NAMESPACE}/${str(doc.name)}`;
}

/** What happened to each document, in input order: created, configured or unchanged. */
export function applyReport(docs: ManifestDoc[], events: WireEvent[]): string {
  const byKey = new Map(events.map((e) => [refKey(e), e]));
  return docs
    .map((d) => {
      const e = byKey.get(keyOf(d.value));
      return `${clean(describe(d.value))} ${e ? eventAction(e) : 'unchanged'}\n`;
    })
    .join('');
}

interface ApplyOptions {
  filename: string[];
  namespace?: string;
  reason?: string;
  dryRun?: boolean;
  expectedRevision?: number;
  idempotencyKey?: string;
}

export function registerApply(program: Command, ctx: Context): void {
  program
    .command('apply')
    .description('create or update the resources of YAML/JSON manifests, all in one revision')
    .requiredOption(
      '-f, --filename <path>',
      'a file, a directory (its .yaml/.yml/.json files, sorted) or - for stdin; repeatable',
      collect,
    )
    .option('-n, --namespace <namespace>', 'namespace for documents that name none (others must match)')
    .option('--reason <text>', 'why: recorded in the audit log (default $MESH_REASON; required)')
    .option('--dry-run', 'validate and show what would change against the current state; write nothing')
    .option(
      '--expected-revision <n>',
      'fail with a conflict unless the head is still this revision',
      intParser(0),
    )
    .option(
      '--idempotency-key <key>',
      'key that makes a repeated apply a no-op (default: a fresh one per run)',
    )
    .addHelpText(
      'after',
      '\nExamples:\n  meshctl apply -f examples/bookinfo.yaml --reason "bookinfo demo"\n' +
        '  meshctl get -o yaml | meshctl apply -f - --dry-run',
    )
    .action(async (opts: ApplyOptions, cmd: Command) => {
      const client = ctx.client(cmd);
      const docs = withNamespace(
        await loadManifests(opts.filename, () => ctx.io.readStdin()),
        opts.namespace,
      );
      if (docs.length === 0)
        throw new InputError('no resources found in the input', opts.filename.join(', '));
      const annotate = annotateApply(docs);

      if (opts.dryRun) {
        const current = await client.resources();
        ctx.io.out(dryRun(docs, current.revision, current.items, opts.expectedRevision, annotate));
        return;
      }

      const reason = ctx.reason(opts.reason, 'apply');
      const key = ctx.idempotencyKey(opts.idempotencyKey);
      const body = {
        reason,
        apply: docs.map((d) => d.value),
        ...(opts.expectedRevision !== undefined ? { expectedRevision: opts.expectedRevision } : {}),
      };
      let res: Awaited<ReturnType<typeof client.changes>>;
      try {
        res = await client.changes(body, key);
      } catch (err) {
        if (err instanceof TransportError && err.reason === 'timeout')
          throw new TransportError(
            `${err.message}; the change may or may not have been written. ` +
              `Re-running with --idempotency-key ${key} is safe: it is applied at most once.`,
            'timeout',
          );
        throw annotateError(err, annotate);
      }
      const out = res.body;
      if (isUnchanged(out)) {
        ctx.io.out(
          `${applyReport(docs, [])}no changes: all ${docs.length} resources match revision ${out.revision}; nothing written\n`,
        );
        return;
      }
      ctx.io.out(
        `${applyReport(docs, out.events)}applied as revision ${out.revision} ` +
          `(${out.events.length} ${out.events.length === 1 ? 'event' : 'events'}, change ${out.changeId})\n`,
      );
    });
}

/**
 * `apply --dry-run`: the same parse and reference checks as the API, run here
 * against the current state, then the diff the change would make.
 */
export function dryRun(
  docs: ManifestDoc[],
  headRevision: number,
  items: StoredResource[],
  expectedRevision: number | undefined,
  annotate: Annotate,
): string {
  if (expectedRevision !== undefined && expectedRevision !== headRevision)
    throw new CommandFailed(
      `conflict: --expected-revision is ${expectedRevision} but the head is revision ${headRevision}`,
    );
  const state: MeshState = { revision: headRevision, resources: new Map(items.map((r) => [refKey(r), r])) };
  const details: ErrorDetail[] = [];
  const changes: Change[] = [];
  docs.forEach((d, i) => {
    try {
      const r = parseResource(d.value, `apply[${i}]`);
      changes.push({ op: 'put', kind: r.kind, namespace: r.namespace, name: r.name, spec: r.spec });
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      details.push(...err.details);
    }
  });
  if (details.length === 0) {
    try {
      validateChangeSet(viewOf(state), changes, (i) => `apply[${i}]`);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      details.push(...err.details);
    }
  }
  if (details.length > 0) {
    const more = details.length > 1 ? ` (and ${details.length - 1} more)` : '';
    throw annotateError(
      new ValidationError(`invalid input: ${details[0]!.path} ${details[0]!.message}${more}`, details),
      annotate,
    );
  }

  const next = applyChanges(state, changes, headRevision + 1);
  const diff = diffStates(state, next);
  const added = new Set(diff.added.map(refKey));
  const changed = new Set(diff.changed.map(refKey));
  const lines = changes.map((c) => {
    const k = refKey(c);
    const what = added.has(k) ? 'created' : changed.has(k) ? 'configured' : 'unchanged';
    return `${c.kind} ${c.namespace}/${c.name} ${what} (dry run)\n`;
  });
  const unchanged = changes.length - added.size - changed.size;
  const summary =
    `dry run against revision ${headRevision}: ${added.size} to create, ${changed.size} to configure, ` +
    `${unchanged} unchanged; nothing written\n`;
  const detail = added.size + changed.size > 0 ? `\n${diffText(diff, false)}\n` : '';
  return lines.join('') + detail + summary;
}
