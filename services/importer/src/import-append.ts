import {
  canonicalEqual,
  ImportPlanChanged,
  importChangeList,
  importChanges,
  importedRef,
  importHeader,
  isEmptyImport,
  type MeshState,
  type Resource,
  refKey,
  type SkippedImport,
  skippedOf,
  splitImport,
  validateImport,
} from '@meshplane/domain';
import type { AppendResult, EventStore } from '@meshplane/event-store';

/** Plans per import: a local write that changes the split again each time is not expected. */
const MAX_PLANS = 4;

export class ImportPlanUnstableError extends Error {
  constructor(peer: string, attempts: number) {
    super(
      `the import from ${peer} was re-planned ${attempts} times (local writes keep changing what clashes)`,
    );
    this.name = 'ImportPlanUnstableError';
  }
}

export interface ImportRequest {
  store: EventStore;
  peer: string;
  /** The peer's whole exported view, with its revision and export seq. */
  view: { revision: number; seq: number; resources: Resource[] };
  /** What the peer's resources in this cluster are now (the importer is their only writer). */
  importedState: () => Promise<MeshState>;
  /** The first guess of what to skip (the last known plan); checked under the append lock. */
  guess: readonly SkippedImport[];
  again?: 'reimport' | 'reapply';
  idempotencyKey: string;
  traceContext: string | null;
}

export interface ImportOutcome {
  /** Null when the accepted part changed nothing (no revision). */
  result: AppendResult | null;
  /** What this import left out. */
  skipped: SkippedImport[];
}

/**
 * Appends a peer's view minus what clashes, in one change set. The split is planned, then
 * confirmed by `validate` under the append lock against the state the append is decided on:
 * if a local write changed it, nothing is written (ImportPlanChanged carries the split under
 * the lock) and the import is planned again. Ownership conflicts and malformed views still
 * refuse the whole import.
 */
export async function appendImport(req: ImportRequest): Promise<ImportOutcome> {
  const { peer, view } = req;
  let plan: SkippedImport[] = [...req.guess];
  let triedWhole = plan.length === 0;
  for (let attempt = 1; attempt <= MAX_PLANS; attempt++) {
    const skippedKeys = new Set(plan.map(refKey));
    const accepted = splitAccepted(view.resources, peer, skippedKeys);
    const ic = importChanges(await req.importedState(), peer, accepted);
    if (isEmptyImport(ic)) {
      // Nothing to write means nothing for the lock to confirm: a skip that is over would go
      // unnoticed, so plan the whole view once (the lock then answers with what still clashes).
      if (triedWhole) return { result: null, skipped: plan };
      triedWhole = true;
      plan = [];
      continue;
    }
    const h = importHeader(peer, view.revision, view.seq, { skipped: plan, again: req.again });
    const planned = plan;
    try {
      const result = await req.store.append(importChangeList(ic), {
        actor: h.actor,
        reason: h.reason,
        metadata: h.metadata,
        idempotencyKey: req.idempotencyKey,
        traceContext: req.traceContext,
        validate: (current, changes) => {
          const locked = splitImport(current, peer, view.resources).skipped;
          if (!canonicalEqual(locked, planned))
            throw new ImportPlanChanged(peer, locked, current.revision ?? 0);
          validateImport(current, changes, peer);
        },
      });
      // A replay answers with the change set written before: its skips are the ones that hold.
      return { result, skipped: result.status === 'replayed' ? skippedOf(result.changeSet.metadata) : plan };
    } catch (err) {
      if (!(err instanceof ImportPlanChanged)) throw err;
      plan = err.skipped;
    }
  }
  throw new ImportPlanUnstableError(peer, MAX_PLANS);
}

function splitAccepted(
  resources: readonly Resource[],
  peer: string,
  skipped: ReadonlySet<string>,
): Resource[] {
  if (skipped.size === 0) return [...resources];
  return resources.filter((r) => !skipped.has(refKey(importedRef(r, peer))));
}
