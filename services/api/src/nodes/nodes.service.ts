import { NotFoundError } from '@meshplane/domain';
import { EventStore } from '@meshplane/event-store';
import type { NodeStatus } from '@meshplane/messaging';
import { traceIdOf } from '@meshplane/telemetry';
import { Inject, Injectable } from '@nestjs/common';
import { API_CONFIG } from '../common/logger';
import { type ApiConfig, DEFAULT_NODE_OFFLINE_AFTER_MS } from '../config';
import {
  deriveNodeState,
  firstUnappliedRevision,
  type NodePropagation,
  type NodeView,
  propagationOf,
} from './node-state';
import { NodeStatusSource } from './status-source';

export interface NodesResponse {
  cluster: string;
  headRevision: number;
  offlineAfterMs: number;
  items: NodeView[];
}

export interface PropagationResponse {
  revision: number;
  committedAt: Date;
  /** When the relay published it to JetStream; null if not yet (or it aged out of the stream). */
  publishedAt: Date | null;
  /** publishedAt − committedAt. */
  publishLatencyMs: number | null;
  /** The revision's OpenTelemetry trace (from its stored trace context), to open in Jaeger or Tempo. */
  traceId: string | null;
  nodes: NodePropagation[];
}

/** Node sync status and revision propagation: agents' reports (NATS KV) against the log (Postgres). */
@Injectable()
export class NodesService {
  private readonly offlineAfterMs: number;

  constructor(
    private readonly store: EventStore,
    private readonly source: NodeStatusSource,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {
    this.offlineAfterMs = config.nodeOfflineAfterMs ?? DEFAULT_NODE_OFFLINE_AFTER_MS;
  }

  async list(): Promise<NodesResponse> {
    // Statuses before the head: a node can then never look ahead of a head read after it applied.
    const statuses = await this.source.readStatuses();
    const now = new Date();
    const headRevision = (await this.store.head()).revision;
    const wanted = statuses
      .map((s) => firstUnappliedRevision(s, headRevision))
      .filter((r): r is number => r !== undefined);
    const committedAt = await this.commitTimes(wanted);
    return {
      cluster: this.config.cluster,
      headRevision,
      offlineAfterMs: this.offlineAfterMs,
      items: statuses.map((status) =>
        deriveNodeState({ status, headRevision, now, offlineAfterMs: this.offlineAfterMs, committedAt }),
      ),
    };
  }

  async propagation(revision: number): Promise<PropagationResponse> {
    const [header] = await this.store.listChangeSets({ fromRevision: revision, limit: 1 });
    const committedAt = header?.revision === revision ? header.createdAt : undefined;
    if (!header || !committedAt) {
      throw new NotFoundError(`revision ${revision} does not exist`, [
        { path: 'rev', message: 'no such revision' },
      ]);
    }
    const [statuses, publishedAt] = await Promise.all([
      this.source.readStatuses(),
      this.source.publishedAt(revision),
    ]);
    const now = new Date();
    const nodes = statuses.map((status: NodeStatus) =>
      propagationOf({ status, revision, committedAt, now, offlineAfterMs: this.offlineAfterMs }),
    );
    return {
      revision,
      committedAt,
      publishedAt,
      publishLatencyMs: publishedAt ? publishedAt.getTime() - committedAt.getTime() : null,
      traceId: traceIdOf(header.traceContext),
      nodes,
    };
  }

  /**
   * Commit time of each revision (absent: no such revision). One indexed lookup per distinct
   * revision; nodes cluster around a few revisions, so this stays a handful of queries.
   */
  private async commitTimes(revisions: number[]): Promise<Map<number, Date>> {
    const distinct = [...new Set(revisions)].filter((r) => r >= 1);
    const found = await Promise.all(
      distinct.map(async (r) => {
        const [header] = await this.store.listChangeSets({ fromRevision: r, limit: 1 });
        return header?.revision === r ? ([r, header.createdAt] as const) : undefined;
      }),
    );
    return new Map(found.filter((e) => e !== undefined));
  }
}
