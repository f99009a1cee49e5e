import {
  changesToReach,
  diffStates,
  isEmptyDiff,
  type MeshState,
  NotFoundError,
  refKey,
  type StateDiff,
  validateChangeSet,
} from '@meshplane/domain';
import { EventStore } from '@meshplane/event-store';
import { isTracing, type Link, linkTo } from '@meshplane/telemetry';
import { Injectable } from '@nestjs/common';
import { MetricsService } from '../common/metrics.service';
import { parseInput } from '../common/validation';
import { RollbackRequestSchema } from './changes.schemas';
import { appendAudited, type WriteContext, type WriteOutcome } from './write-context';

export type RollbackOutcome =
  | WriteOutcome
  | {
      kind: 'dryRun';
      body: { dryRun: true; fromRevision: number; toRevision: number; unchanged: boolean; diff: StateDiff };
    };

/** Keys of resources owned by another cluster (federation) in either state: a rollback leaves them alone. */
function importedKeys(...states: MeshState[]): Set<string> {
  const keys = new Set<string>();
  for (const s of states)
    for (const r of s.resources.values()) if (r.origin !== undefined) keys.add(refKey(r));
  return keys;
}

function withoutKeys(d: StateDiff, keys: Set<string>): StateDiff {
  return {
    added: d.added.filter((r) => !keys.has(refKey(r))),
    removed: d.removed.filter((r) => !keys.has(refKey(r))),
    changed: d.changed.filter((r) => !keys.has(refKey(r))),
  };
}

/**
 * History is never rewritten: a rollback appends one revision whose events take
 * the local resources back to what they were at `toRevision`.
 */
@Injectable()
export class RollbackService {
  constructor(
    private readonly store: EventStore,
    private readonly metrics: MetricsService,
  ) {}

  async rollback(body: unknown, ctx: WriteContext): Promise<RollbackOutcome> {
    const req = parseInput(RollbackRequestSchema, body, '', 'rollback request');
    const current = await this.store.currentState();
    if (req.toRevision > current.revision) {
      throw new NotFoundError(`revision ${req.toRevision} does not exist (head is ${current.revision})`, [
        { path: 'toRevision', message: `must be between 1 and ${current.revision}` },
      ]);
    }
    const target = await this.store.stateAt(req.toRevision);
    const imported = importedKeys(current, target);

    if (req.dryRun) {
      const diff = withoutKeys(diffStates(current, target), imported);
      return {
        kind: 'dryRun',
        body: {
          dryRun: true,
          fromRevision: current.revision,
          toRevision: req.toRevision,
          unchanged: isEmptyDiff(diff),
          diff,
        },
      };
    }

    const changes = changesToReach(current, target).filter((c) => !imported.has(refKey(c)));
    if (changes.length === 0) {
      return {
        kind: 'unchanged',
        revision: current.revision,
        body: { revision: current.revision, unchanged: true },
      };
    }
    // The rollback's trace links to the trace of the revision it restores.
    const links: Link[] = [];
    if (isTracing(ctx.parent)) {
      const [restored] = await this.store.listChangeSets({ fromRevision: req.toRevision, limit: 1 });
      const link = linkTo(restored?.revision === req.toRevision ? restored.traceContext : null, {
        'mesh.revision': req.toRevision,
      });
      if (link) links.push(link);
    }
    return appendAudited(
      this.store,
      this.metrics,
      { ctx, route: 'rollback', body, reason: req.reason },
      changes,
      {
        // The changes were computed from `current`: if another revision landed since, they may be wrong.
        expectedRevision: req.expectedRevision ?? current.revision,
        restoredFromRevision: req.toRevision,
        validate: (view, effective) =>
          validateChangeSet(view, effective, (i) => `rollback[${refKey(effective[i]!)}]`),
      },
      {
        attributes: { 'mesh.changes': changes.length, 'mesh.restored_from_revision': req.toRevision },
        links,
      },
    );
  }
}
