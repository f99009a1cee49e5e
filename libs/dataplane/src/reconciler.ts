import { isCurrentLayout, type MapBackend, type Meta, readMaps } from './backend';
import { Backoff, type BackoffOptions, Mutex } from './backoff';
import { byteStringToHex } from './codec';
import type { CompiledMaps } from './compile';
import { IdAllocator } from './ids';
import { LAYOUT_VERSION } from './layout';
import { digestMapSet, type MapSet } from './maps';
import { executeOp, type Op, planOps, planTouched, type TouchedKeys } from './plan';

/*
 * Keeps a backend's maps equal to the latest desired CompiledMaps, in the
 * manner of Cilium's StateDB reconciler: plan a diff, apply it in ordered
 * batches, record per-object status, retry failures with exponential backoff
 * (100 ms -> 1 min), and periodically read EVERYTHING back and repair drift.
 *
 * A revision costs a diff, not a full read: after an attempt that succeeded the
 * maps equal that desired state, so the next round's touched keys (incremental
 * compiler) say what to write, as Cilium's reconciler works from its table's
 * pending objects. A full round (first apply, a new compiler, a full pass, any
 * round after a failure, which may have half applied a batch) reads the maps
 * back and diffs everything (principle 5: never trust memory). That copy of the
 * maps is dropped once its round is planned: kept, it would be a third copy of
 * every entry beside the desired state and the maps (10k services: ~2 MiB per
 * agent, and a lookup and a write per op).
 * The checkpoint (meta: revision + digest) is written only after every op of
 * a revision succeeded, so it never moves past a revision that failed.
 */

export type ObjectState = 'pending' | 'error';

/** An object (map entry) that is not Done; every entry not listed is Done as of `lastSuccessAt`. */
export interface ObjectStatus {
  map: string;
  /** The entry's key bytes as lower-case hex. */
  key: string;
  state: ObjectState;
  message?: string;
  at: number;
}

export interface ApplyOutcome {
  ok: boolean;
  kind: 'apply' | 'full-pass';
  revision: number;
  /** Entries written or deleted (for a full pass: repairs). */
  ops: number;
  batches: number;
  durationMs: number;
  at: number;
  /** Consecutive failed attempts before this one. */
  attempt: number;
  error?: string;
  /** When the next automatic retry runs, after a failure. */
  retryInMs?: number;
}

export interface ReconcilerOptions {
  node: string;
  cluster: string;
  batchSize?: number;
  backoff?: BackoffOptions;
  now?: () => number;
  /** Every attempt's outcome, including automatic retries and full passes. */
  onOutcome?: (o: ApplyOutcome) => void;
}

export interface SubmitOptions {
  /**
   * The keys that changed since the previous submit (incremental compiler): the
   * plan diffs only those, unless the maps must be re-read (after a failure),
   * in which case it diffs everything.
   */
  touched?: TouchedKeys;
}

export interface ReconcilerStats {
  applies: number;
  failures: number;
  fullPasses: number;
  /** Entries a full pass had to rewrite or delete because the maps drifted. */
  repairs: number;
  lastSuccessAt: number | undefined;
}

export class Reconciler {
  /** What the maps hold, read back for a full round; undefined once it succeeded (see above). */
  private mirror: MapSet | undefined;
  private dirty = true;
  private ids: IdAllocator | undefined;
  private currentMeta: Meta | undefined;
  private target: CompiledMaps | undefined;
  private applied: CompiledMaps | undefined;
  private readonly mutex = new Mutex();
  private readonly backoff: Backoff;
  private retryTimer: NodeJS.Timeout | undefined;
  private passTimer: NodeJS.Timeout | undefined;
  private inflight: { ops: Op[]; next: number } | undefined;
  private errors = new Map<string, ObjectStatus>();
  private stopped = false;
  readonly stats: ReconcilerStats = {
    applies: 0,
    failures: 0,
    fullPasses: 0,
    repairs: 0,
    lastSuccessAt: undefined,
  };

  constructor(
    readonly backend: MapBackend,
    private readonly opts: ReconcilerOptions,
  ) {
    this.backoff = new Backoff(opts.backoff);
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /** Reads the maps and the checkpoint from the backend (start-up, and after any failure). */
  load(): Promise<Meta | undefined> {
    return this.mutex.run(() => this.reload());
  }

  private async reload(): Promise<Meta | undefined> {
    const meta = await this.backend.readMeta();
    if (!isCurrentLayout(meta)) {
      throw new Error(
        `maps hold layout version ${meta!.layoutVersion}, this agent writes ${LAYOUT_VERSION}: refusing to adopt them`,
      );
    }
    this.mirror = await readMaps(this.backend);
    this.currentMeta = meta;
    this.ids = undefined;
    // The maps may hold more than the last applied state (a half-applied attempt): ids come from them now.
    this.applied = undefined;
    this.dirty = false;
    return meta;
  }

  /** The checkpoint as last read or written. */
  get meta(): Meta | undefined {
    return this.currentMeta;
  }

  /** What the maps hold, read from the backend (or its copy from a full round still running). */
  actual(): Promise<MapSet> {
    return this.mutex.run(async () => this.mirror ?? (await readMaps(this.backend)));
  }

  /**
   * Ids for the next compile: those the maps hold right now, so unchanged
   * objects keep theirs and new ones avoid every id in use, including ids a
   * failed, half-applied attempt wrote (the maps are re-read after a failure).
   * Read from the maps (a copy read back for this, kept until the next round is
   * planned), not from the last desired state: a desired state may be updated
   * in place (incremental compiler) and run ahead of the maps.
   */
  allocator(): Promise<IdAllocator> {
    return this.mutex.run(async () => {
      if (this.dirty || this.mirror === undefined) await this.reload();
      this.ids ??= IdAllocator.fromMaps(this.mirror!);
      return this.ids;
    });
  }

  /** Objects not Done: entries of a failed batch (error) and of batches not yet run (pending). */
  objectStatus(): ObjectStatus[] {
    const out = [...this.errors.values()];
    if (this.inflight) {
      const at = this.now();
      for (const op of this.inflight.ops.slice(this.inflight.next)) {
        for (const key of op.keys)
          if (!this.errors.has(`${op.map}/${key}`))
            out.push({ map: op.map, key: byteStringToHex(key), state: 'pending', at });
      }
    }
    return out;
  }

  /** One attempt to make the maps equal `desired` and checkpoint its revision. Never throws for map errors. */
  apply(desired: CompiledMaps, opts: SubmitOptions = {}): Promise<ApplyOutcome> {
    return this.mutex.run(() => this.attempt(desired, 'apply', opts.touched));
  }

  /**
   * Makes `desired` the target and applies it; on failure it retries with
   * backoff until an attempt succeeds or a newer target replaces it. Resolves
   * with the outcome of the first attempt; `onOutcome` sees every attempt.
   */
  async submit(desired: CompiledMaps, opts: SubmitOptions = {}): Promise<ApplyOutcome> {
    this.target = desired;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const outcome = await this.apply(desired, opts);
    return this.afterAttempt(outcome, desired);
  }

  private afterAttempt(outcome: ApplyOutcome, desired: CompiledMaps): ApplyOutcome {
    if (outcome.ok) this.backoff.reset();
    else if (!this.stopped && this.target === desired) {
      outcome.retryInMs = this.backoff.next();
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        if (this.target !== desired || this.stopped) return;
        void this.apply(desired).then((o) => this.afterAttempt(o, desired));
      }, outcome.retryInMs);
      // Retries never keep a process alive on their own; the agent's connection does.
      this.retryTimer.unref();
    }
    this.opts.onOutcome?.(outcome);
    return outcome;
  }

  /**
   * Re-reads everything from the backend and rewrites whatever differs from
   * the last applied (or targeted) state: entries deleted or changed by hand,
   * or left by a crash. The outcome's `ops` are the repairs.
   */
  fullPass(): Promise<ApplyOutcome> {
    return this.mutex.run(async () => {
      this.stats.fullPasses++;
      // Drift is only "repaired" against a state that was already applied; otherwise this is a retry.
      const desired = this.target ?? this.applied;
      const wasApplied = desired !== undefined && desired === this.applied;
      this.dirty = true;
      if (!desired) {
        const at = this.now();
        try {
          await this.reload();
          return {
            ok: true,
            kind: 'full-pass',
            revision: this.currentMeta?.appliedRevision ?? 0,
            ops: 0,
            batches: 0,
            durationMs: 0,
            at,
            attempt: 0,
          };
        } catch (err) {
          return {
            ok: false,
            kind: 'full-pass',
            revision: 0,
            ops: 0,
            batches: 0,
            durationMs: 0,
            at,
            attempt: 0,
            error: (err as Error).message,
          };
        }
      }
      const outcome = await this.attempt(desired, 'full-pass');
      if (outcome.ok && wasApplied) this.stats.repairs += outcome.ops;
      this.opts.onOutcome?.(outcome);
      return outcome;
    });
  }

  /** Runs `fullPass` every `intervalMs` (unref'd: it never keeps a process alive). */
  startPeriodicFullPass(intervalMs: number): void {
    clearInterval(this.passTimer);
    this.passTimer = setInterval(() => void this.fullPass(), intervalMs);
    this.passTimer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.passTimer);
  }

  private async attempt(
    desired: CompiledMaps,
    kind: ApplyOutcome['kind'],
    touched?: TouchedKeys,
  ): Promise<ApplyOutcome> {
    const start = this.now();
    const attempt = this.backoff.attempts;
    // The outcome is built field by field: a spread base object was ~2% of an apply in a profile.
    let revision = desired.revision;
    let ops: Op[] = [];
    let done = 0;
    try {
      const batchSize = this.opts.batchSize ?? 1000;
      // After a failure the touched keys do not say what the maps lack: everything is diffed.
      const full = touched === undefined || this.dirty;
      if (this.dirty || (full && this.mirror === undefined)) await this.reload();
      const mirror = this.mirror;
      // The writes below do not keep that copy (or ids taken from it) up to date: they go now,
      // and whatever needs the maps again (a full round, allocator(), actual()) reads them back.
      this.mirror = undefined;
      this.ids = undefined;
      if (!full)
        ops = mirror
          ? planOps(desired, mirror, { batchSize, only: touched })
          : planTouched(desired, touched, batchSize);
      else ops = planOps(desired, mirror!, { batchSize });
      // Captured with the plan (synchronously): a desired state updated in place later must
      // not lend this checkpoint a revision or digest whose changes this plan does not carry.
      revision = desired.revision;
      const digest = desired.digest ?? digestMapSet(desired.maps);
      this.inflight = { ops, next: 0 };
      for (const op of ops) {
        try {
          // Awaited only when the backend answers with a promise (see MapBackend).
          const pending = executeOp(this.backend, op);
          if (pending) await pending;
        } catch (err) {
          this.dirty = true;
          const at = this.now();
          this.errors = new Map(
            op.keys.map((key) => [
              `${op.map}/${key}`,
              { map: op.map, key: byteStringToHex(key), state: 'error', message: (err as Error).message, at },
            ]),
          );
          throw err;
        }
        done += op.keys.length;
        this.inflight.next++;
      }
      const cur = this.currentMeta;
      if (
        !cur ||
        cur.appliedRevision !== revision ||
        cur.mapsDigest !== digest ||
        cur.node !== this.opts.node
      ) {
        const meta: Meta = {
          layoutVersion: LAYOUT_VERSION,
          appliedRevision: revision,
          appliedAtMs: this.now(),
          mapsDigest: digest,
          node: this.opts.node,
          cluster: this.opts.cluster,
        };
        try {
          const pending = this.backend.writeMeta(meta);
          if (pending) await pending;
        } catch (err) {
          this.dirty = true;
          throw err;
        }
        this.currentMeta = meta;
      }
      this.inflight = undefined;
      if (this.errors.size > 0) this.errors = new Map();
      // The maps equal `desired` now; the next round plans from its touched keys.
      this.applied = desired;
      this.stats.applies++;
      const at = this.now();
      this.stats.lastSuccessAt = at;
      return {
        kind,
        revision,
        attempt,
        ok: true,
        ops: done,
        batches: ops.length,
        durationMs: at - start,
        at,
      };
    } catch (err) {
      this.stats.failures++;
      const at = this.now();
      return {
        kind,
        revision,
        attempt,
        ok: false,
        ops: done,
        batches: ops.length,
        durationMs: at - start,
        at,
        error: errorText(err),
      };
    }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
