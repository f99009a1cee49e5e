import {
  type Change,
  type ErrorDetail,
  ownershipError,
  ownershipOfInput,
  parseResource,
  parseResourceRef,
  refKey,
  ValidationError,
  validateChangeSet,
} from '@meshplane/domain';
import { EventStore } from '@meshplane/event-store';
import { Injectable } from '@nestjs/common';
import { MetricsService } from '../common/metrics.service';
import { parseInput } from '../common/validation';
import { ChangeRequestSchema } from './changes.schemas';
import { appendAudited, type WriteContext, type WriteOutcome } from './write-context';

/** Turns a change request into one revision (or none), with every problem reported by field path. */
@Injectable()
export class ChangesService {
  constructor(
    private readonly store: EventStore,
    private readonly metrics: MetricsService,
  ) {}

  async submit(body: unknown, ctx: WriteContext): Promise<WriteOutcome> {
    const req = parseInput(ChangeRequestSchema, body, '', 'change request');
    const { changes, pathOf, owned } = this.toChanges(req.apply, req.delete);
    // Imported resources belong to their cluster: 409 naming it (federation), not a 400 for the dotted name.
    if (owned.length > 0) throw ownershipError(owned, (await this.store.head()).revision);

    return appendAudited(
      this.store,
      this.metrics,
      { ctx, route: 'changes', body, reason: req.reason },
      changes,
      {
        ...(req.expectedRevision !== undefined ? { expectedRevision: req.expectedRevision } : {}),
        // Runs under the append lock against the head state: references and VIPs are checked
        // against exactly the state this revision will be appended to.
        validate: (view, effective) => validateChangeSet(view, effective, (i) => pathOf(effective[i]!)),
      },
      { attributes: { 'mesh.changes': changes.length } },
    );
  }

  /** Parses every item (collecting all errors) and maps each change back to its request path. */
  private toChanges(
    apply: unknown[],
    del: unknown[],
  ): { changes: Change[]; pathOf: (c: Change) => string; owned: ErrorDetail[] } {
    const details: ErrorDetail[] = [];
    const owned: ErrorDetail[] = [];
    const isOwned = (item: unknown, path: string) => {
      const conflict = ownershipOfInput(item, path);
      if (conflict) owned.push(conflict);
      return conflict !== undefined;
    };
    const changes: Change[] = [];
    const paths = new Map<Change, string>();
    const byKey = new Map<string, string>();
    const add = (c: Change, path: string) => {
      const key = refKey(c);
      const first = byKey.get(key);
      if (first)
        details.push({
          path,
          message: `${c.kind} ${c.namespace}/${c.name} appears more than once (also ${first})`,
        });
      byKey.set(key, first ?? path);
      changes.push(c);
      paths.set(c, path);
    };
    const collect = (fn: () => void) => {
      try {
        fn();
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        details.push(...err.details);
      }
    };
    for (const [i, item] of apply.entries()) {
      if (isOwned(item, `apply[${i}]`)) continue;
      collect(() => {
        const r = parseResource(item, `apply[${i}]`);
        add({ op: 'put', kind: r.kind, namespace: r.namespace, name: r.name, spec: r.spec }, `apply[${i}]`);
      });
    }
    for (const [i, item] of del.entries()) {
      if (isOwned(item, `delete[${i}]`)) continue;
      collect(() => {
        const r = parseResourceRef(item, `delete[${i}]`);
        add({ op: 'delete', kind: r.kind, namespace: r.namespace, name: r.name }, `delete[${i}]`);
      });
    }
    if (apply.length === 0 && del.length === 0) {
      details.push({ path: 'apply', message: 'nothing to change: apply and delete are both empty' });
    }
    if (details.length > 0 && owned.length === 0) {
      const more = details.length > 1 ? ` (and ${details.length - 1} more)` : '';
      throw new ValidationError(
        `invalid change request: ${details[0]!.path} ${details[0]!.message}${more}`,
        details,
      );
    }
    // The store hands `validate` the effective changes, a filtered subset of these same objects.
    return { changes, pathOf: (c) => paths.get(c) ?? byKey.get(refKey(c)) ?? refKey(c), owned };
  }
}
