import type { FederationLinkStatus } from '@meshplane/messaging';
import type { Command } from 'commander';
import type { MeshClient } from '../client';
import { type Context, type OutputFormat, outputOption } from '../context';
import { clean, table, toJson, toYaml, truncate } from '../format';
import { formatAge } from './status';

/** What `GET /v1/federation` answers (services/api/src/federation): each peer's link, and whether it is stale. */
export interface FederationPeerItem
  extends Omit<FederationLinkStatus, 'cluster' | 'skipped' | 'skippedCount'>,
    Partial<Pick<FederationLinkStatus, 'skipped' | 'skippedCount'>> {
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

/**
 * Below the table, per peer: what its last import left out and why (the VIP and who holds it).
 * Empty when nothing is skipped (and from an API that does not report skips).
 */
export function skippedSection(r: FederationResponse): string {
  const out: string[] = [];
  for (const p of r.peers) {
    const skipped = p.skipped ?? [];
    const count = Math.max(p.skippedCount ?? 0, skipped.length);
    if (count === 0) continue;
    out.push(`\nSkipped from ${clean(p.peer)} (${count}; imported once the clash is gone):`);
    for (const s of skipped) out.push(`  ${clean(s.message)}`);
    if (count > skipped.length)
      out.push(`  ... and ${count - skipped.length} more (see the import change set)`);
  }
  return out.length > 0 ? `${out.join('\n')}\n` : '';
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
        'imported/published by the peer; IMPORTED-AS is the local revision of the last import.\n' +
        'Exported resources whose VIP is used outside their global service are skipped (listed\n' +
        'below the table); the rest of the peer imports, and they follow once the VIP is free.\n',
    )
    .action(async (opts: { output: OutputFormat }, cmd: Command) => {
      const r = await fetchFederation(ctx.client(cmd));
      if (opts.output === 'json') ctx.io.out(toJson(r));
      else if (opts.output === 'yaml') ctx.io.out(toYaml(r));
      else if (r.peers.length === 0)
        ctx.io.err(`No federation peers in cluster ${clean(r.cluster)} (no importer has run).\n`);
      else ctx.io.out(federationTable(r) + skippedSection(r));
    });
}

export function fetchFederation(client: MeshClient): Promise<FederationResponse> {
  return client.get<FederationResponse>('/v1/federation');
}
