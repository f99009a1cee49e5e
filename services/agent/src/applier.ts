import {
  type ApplyOutcome,
  type CgroupIdOf,
  IncrementalCompiler,
  type IncrementalResult,
  type Reconciler,
} from '@meshplane/dataplane';
import { emptyState, evolveInPlace, type MeshState, refKey } from '@meshplane/domain';
import type { ChangeSet } from '@meshplane/event-store';
import { decodeRevision } from '@meshplane/messaging';
import type { MsgHdrs } from '@nats-io/transport-node';
import type { Logger } from './logger';
import type { AgentObserver } from './metrics';
import type { StatusReporter } from './status';
import { type CgroupSnapshot, changedCgroups, type WorkloadCgroups } from './workload-cgroups';

/*
 * The apply half of the agent (step 4 of agent.ts): revisions from the stream are queued as
 * they arrive and folded into the desired state in order; then the state is compiled (the
 * incremental compiler: only the services the changes can affect), and the reconciler diffs
 * the touched keys against the maps, applies the ordered ops and checkpoints. Everything that
 * arrived while an apply ran is coalesced into the next one.
 *
 * It also keeps the workload cgroups (bpf): created before each compile, rescanned by the
 * agent's timer, and when a cgroup id changed the identities are recompiled and written.
 */

/** The state must be rebuilt (a gap in the revisions, or one the stream mislabels). */
export class Restart extends Error {}

interface Pending {
  seq: number;
  /** The message decoded on arrival, or why it could not be (thrown when it is folded). */
  revision: ChangeSet | Error;
  /** Messages the stream held after this one when it was delivered (JetStream's num_pending). */
  behind: number;
  /** Read only if the apply is traced (see AgentObserver). */
  headers: () => MsgHdrs | undefined;
  receivedAt: number;
}

export interface ApplierDeps {
  node: string;
  reconciler: Reconciler;
  reporter: StatusReporter;
  observer: AgentObserver;
  log: Logger;
  cgroupIdOf: CgroupIdOf;
  cgroups?: WorkloadCgroups | undefined;
  /** True once the agent is stopping: no new apply starts. */
  stopped(): boolean;
}

export class RevisionApplier {
  state: MeshState = emptyState();
  private queue: Pending[] = [];
  // When the newest folded revision arrived, and whether it was folded alone (not coalesced):
  // only then is its receive time that revision's own, for `meshctl trace`.
  private received: { revision: number; at: number; alone: boolean } | undefined;
  private minApply = 0;
  private lastSubmitted = -1;
  // Revisions folded since the last submit (or rebase).
  private foldedSinceSubmit = 0;
  // Catching up: the stream already held revisions up to this one, so nothing is applied before
  // it is folded. One diff for the whole backlog: no intermediate state reaches the maps, and a
  // restart over maps a kill left half-written never rolls them back to its checkpoint first.
  // Fixed once set (newer arrivals do not move it), so a busy stream cannot starve the maps.
  private catchUpTo = 0;
  // Rebuilt from scratch after every (re)bootstrap, fed the changed keys after that.
  private compiler: IncrementalCompiler | undefined;
  private changed = new Set<string>();
  private fullPlan = true;
  private applying = false;
  // Workload cgroup ids as of the last compile; a rescan that finds others recompiles identities.
  private compiledCgroups: CgroupSnapshot = new Map();
  private lastScan: CgroupSnapshot = new Map();
  private identitiesStale = false;
  // Set by trackCgroups for the next incremental compile: a changed local workload's cgroup id moved.
  private refreshIdentities = false;
  cgroupRefreshes = 0;

  constructor(private readonly deps: ApplierDeps) {}

  /** A new base state (bootstrap): nothing older than `minApply` (what the maps hold) is applied. */
  rebase(state: MeshState, minApply: number): void {
    this.state = state;
    this.minApply = minApply;
    this.lastSubmitted = -1;
    this.foldedSinceSubmit = 0;
    this.catchUpTo = 0;
    this.compiler = undefined;
    this.fullPlan = true;
    this.identitiesStale = false; // the full compile after a bootstrap reads every cgroup anyway
    this.refreshIdentities = false;
    this.changed = new Set();
    this.queue = [];
  }

  enqueue(
    seq: number,
    data: Uint8Array,
    behind: number,
    headers: () => MsgHdrs | undefined,
    receivedAt: number,
  ): void {
    // Decoded now, in the turn that reads the messages, not in the apply: a process hosting many
    // agents then runs every decode back to back (see next-turn.ts), and the bytes are let go.
    let revision: ChangeSet | Error;
    try {
      revision = decodeRevision(data);
    } catch (err) {
      revision = err as Error;
    }
    this.queue.push({ seq, revision, behind, headers, receivedAt });
  }

  /**
   * A new consumer starts at `start` over a stream that held `pending` revisions from there on:
   * those are the catch-up target. What the previous consumer said the stream held is dropped:
   * a stream that lost those revisions must not hold back what is folded already.
   */
  consumerStarted(start: number, pending: number): void {
    this.catchUpTo = pending > 0 ? start - 1 + pending : 0;
  }

  /** Folded revisions wait for ones the stream already holds (see catchUpTo). */
  get catchingUp(): boolean {
    return this.state.revision < this.catchUpTo;
  }

  /** Revisions received and not folded yet. */
  get backlog(): number {
    return this.queue.length;
  }

  /** Work that does not come from the stream: a workload cgroup changed under a current state. */
  get identitiesPending(): boolean {
    return this.identitiesStale && this.state.revision >= this.minApply && !this.catchingUp;
  }

  /** When the applied revision arrived, if it was applied on its own (for the status history). */
  receivedAtFor(o: ApplyOutcome): number | undefined {
    const r = this.received;
    return o.ok && o.kind === 'apply' && r?.revision === o.revision && r.alone ? r.at : undefined;
  }

  /** Workloads of this node and how many have their cgroup (bpf), for the status value. */
  cgroupStatus(): { workloads: number; workloadCgroups: number } | undefined {
    const c = this.deps.cgroups;
    return c ? { workloads: c.size, workloadCgroups: c.present(this.lastScan) } : undefined;
  }

  // Compile and apply the state once everything already buffered has been folded in.
  async applyPending(): Promise<void> {
    if (this.applying) return;
    this.applying = true;
    const { reconciler, reporter, observer, log } = this.deps;
    try {
      while (this.queue.length > 0 && !this.deps.stopped()) {
        const batch = this.queue;
        this.queue = [];
        for (const m of batch) {
          if (!this.fold(m.seq, m.revision, m.headers)) continue;
          if (m.behind > 0 && this.catchUpTo < m.seq) this.catchUpTo = m.seq + m.behind;
          this.received = { revision: m.seq, at: m.receivedAt, alone: this.foldedSinceSubmit === 1 };
        }
      }
      const state = this.state;
      if (this.deps.stopped() || state.revision < this.minApply || this.catchingUp) return;
      if (state.revision === this.lastSubmitted && !this.identitiesStale) return;
      reporter.setState('APPLYING');
      const span = observer.beginApply(state.revision);
      let result: IncrementalResult;
      try {
        span.compileStarted();
        this.trackCgroups();
        // After a (re)bootstrap: everything, with ids read from the maps. Then only what changed.
        if (this.compiler === undefined) {
          const fresh = new IncrementalCompiler(this.deps.node, { cgroupIdOf: this.deps.cgroupIdOf });
          result = fresh.reset(state, await reconciler.allocator());
          this.compiler = fresh;
          this.fullPlan = true;
        } else
          result = this.compiler.update(state, this.changed, { refreshIdentities: this.refreshIdentities });
        this.changed = new Set();
        span.compiled({
          'mesh.full_compile': this.fullPlan,
          'mesh.skipped': result.desired.stats.skipped.length,
        });
      } catch (err) {
        span.failed(err);
        // Reading the maps back failed: nothing was submitted, so the next pass tries again.
        reporter.setState('ERROR', `revision ${state.revision}: ${(err as Error).message}`);
        void reporter.publish();
        throw err;
      }
      const { desired } = result;
      if (desired.stats.skipped.length)
        log.warn('resources skipped by compile', { skipped: desired.stats.skipped });
      this.lastSubmitted = state.revision;
      this.foldedSinceSubmit = 0;
      span.submitted(await reconciler.submit(desired, this.fullPlan ? {} : { touched: result.touched }));
      this.fullPlan = false;
    } finally {
      this.applying = false;
    }
    if (this.queue.length > 0 && !this.deps.stopped()) await this.applyPending();
  }

  /** Folds one revision into the state; false if it was folded before. */
  private fold(seq: number, cs: ChangeSet | Error, headers: () => MsgHdrs | undefined): boolean {
    const state = this.state;
    if (seq <= state.revision) return false; // already folded (redelivery after a consumer reset)
    if (seq !== state.revision + 1)
      throw new Restart(`revision ${state.revision + 1} is missing (got ${seq})`);
    if (cs instanceof Error) throw cs;
    if (cs.revision !== seq) throw new Restart(`stream sequence ${seq} carries revision ${cs.revision}`);
    for (const e of cs.events) {
      evolveInPlace(state, e);
      this.changed.add(refKey(e));
    }
    state.revision = seq;
    this.foldedSinceSubmit++;
    this.deps.observer.foldedRevision(cs, headers);
    return true;
  }

  // The cgroups exist before the compile reads their ids (processes can join them at once).
  private trackCgroups(): void {
    const cgroups = this.deps.cgroups;
    if (!cgroups) return;
    if (this.compiler === undefined) cgroups.reset(this.state);
    else cgroups.track(this.state, this.changed);
    cgroups.ensureAll();
    // A cgroup id the last compile did not see must reach mesh_identities. When a local
    // workload is among the changes the incremental compiler is told to rewrite every local
    // identity; otherwise (a cgroup created or re-created by hand) only a full compile does it.
    const now = cgroups.snapshot();
    const localChange = [...this.changed].some((k) => this.compiledCgroups.has(k) || now.has(k));
    const moved = changedCgroups(this.compiledCgroups, now).length > 0;
    if (this.identitiesStale || (!localChange && moved)) this.compiler = undefined;
    this.refreshIdentities = localChange && moved;
    this.identitiesStale = false;
    this.compiledCgroups = now;
    this.lastScan = now;
  }

  /**
   * Workload cgroups change outside the revision stream: re-create missing ones, and mark the
   * identities for a recompile when an id differs from the one the maps were compiled with.
   * Returns whether there is new work for the apply loop.
   */
  scanCgroups(): boolean {
    const { cgroups, log } = this.deps;
    if (!cgroups || this.deps.stopped() || this.compiler === undefined) return false;
    try {
      cgroups.ensureAll();
      this.lastScan = cgroups.snapshot();
    } catch (err) {
      log.warn('workload cgroup scan failed', { error: (err as Error).message });
      return false;
    }
    const diff = changedCgroups(this.compiledCgroups, this.lastScan);
    if (diff.length === 0 || this.identitiesStale) return false;
    this.identitiesStale = true;
    this.cgroupRefreshes++;
    log.info('workload cgroups changed; refreshing identities', { workloads: diff.slice(0, 20) });
    return true;
  }
}
