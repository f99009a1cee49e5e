import type { FederationLinkStatus } from '@meshplane/messaging';
import type { Command } from 'commander';
import type { MeshClient } from '../client';
import { type Context, type OutputFormat, outputOption } from '../context';
import { clean, table, toJson, toYaml, truncate } from '../format';
import { formatAge } from './status';

/** What `GET /v1/federation` answers (services/api/src/federation): each peer's link, and whether it is stale. */
export interface FederationPeerItem extends Omit<FederationLinkStatus, 'cluster'> {
  stale: boolean;
}

export interface FederationResponse {
  cluster: string;
  peers: FederationPeerItem[];
}

const ageOf = (iso: string, now: number) => formatAge((now - Date.parse(iso)) / 1000);

/** PEER LINK SINCE PEER-REV SEQ LAG LOCAL-REV ERROR, like `cilium clustermesh status`. */
export function federationTable(r: FederationResponse, now = Date.now()): string {
  return table(
    ['PEER', 'LINK', 'SINCE', 'PEER-REVISION', 'EXPORT-SEQ', 'LAG', 'IMPORTED-AS', 'ERROR'],
    r.peers.map((p) => [
      p.peer,
      `${p.state.toUpperCase()}${p.withdrawn ? ' (withdrawn)' : ''}${p.stale ? ' (stale)' : ''}`,
      `${ageOf(p.since, now)} ago`,
      p.lastImportedRevision,
      `${p.lastImportedSeq}/${p.peerSeq}`,
      p.lag,
      p.lastImportRevision ?? '',
      p.lastError ? truncate(clean(p.lastError), 50) : '',
    ]),
  );
}

export function registerFederation(program: Command, ctx: Context): void {
  const fed = program.command('federation').description('multi-cluster federation');
  fed
    .command('status')
    .description('peers of this cluster: link state, last imported peer revision and export seq, lag')
    .addOption(outputOption())
    .addHelpText(
      'after',
      '\nLINK: CONNECTED when the peer answers through its JetStream domain; DISCONNECTED backends\n' +
        'are kept for the cache TTL (MESH_FEDERATION_CACHE_TTL), then withdrawn. EXPORT-SEQ is\n' +
        'imported/published by the peer; IMPORTED-AS is the local revision of the last import.\n',
    )
    .action(async (opts: { output: OutputFormat }, cmd: Command) => {
      const r = await fetchFederation(ctx.client(cmd));
      if (opts.output === 'json') ctx.io.out(toJson(r));
      else if (opts.output === 'yaml') ctx.io.out(toYaml(r));
      else if (r.peers.length === 0)
        ctx.io.err(`No federation peers in cluster ${clean(r.cluster)} (no importer has run).\n`);
      else ctx.io.out(federationTable(r));
    });
}

export function fetchFederation(client: MeshClient): Promise<FederationResponse> {
  return client.get<FederationResponse>('/v1/federation');
}
