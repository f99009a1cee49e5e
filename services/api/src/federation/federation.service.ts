import {
  type FederationLinkStatus,
  federationBucket,
  openFederationBucket,
  readLinkStatuses,
  streamInfoOrUndefined,
} from '@meshplane/messaging';
import { Inject, Injectable } from '@nestjs/common';
import { API_CONFIG, ApiLogger } from '../common/logger';
import type { ApiConfig } from '../config';
import { NodeStatusSource } from '../nodes/status-source';

/** The importer rewrites each link every probe (1 s by default); older than this, it is not running. */
export const LINK_STALE_MS = 30_000;

export interface FederationPeerView extends FederationLinkStatus {
  /** No update from the importer for LINK_STALE_MS: the state shown is the last it wrote. */
  stale: boolean;
}

export interface FederationView {
  cluster: string;
  peers: FederationPeerView[];
}

/** Link states the importer writes to the cluster's federation KV bucket (one key per peer). */
@Injectable()
export class FederationService {
  constructor(
    @Inject(API_CONFIG) private readonly config: ApiConfig,
    private readonly source: NodeStatusSource,
    private readonly logger: ApiLogger,
  ) {}

  async status(now = Date.now()): Promise<FederationView> {
    const cluster = this.config.cluster;
    const links = await this.source.use('read federation link status', async ({ js, jsm }) => {
      // No bucket until an importer ran: a cluster that does not federate has no peers.
      if (!(await streamInfoOrUndefined(jsm, `KV_${federationBucket(cluster)}`))) return [];
      return readLinkStatuses(await openFederationBucket(js, cluster), (key, err) =>
        this.logger.log('warn', 'skipping an undecodable link status', { key, error: err.message }),
      );
    });
    return {
      cluster,
      peers: links.map((l) => ({ ...l, stale: now - Date.parse(l.updatedAt) > LINK_STALE_MS })),
    };
  }
}
