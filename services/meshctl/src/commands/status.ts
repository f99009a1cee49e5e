import type { Command } from 'commander';
import type { NodeItem, NodesResponse } from '../api-types';
import type { MeshClient } from '../client';
import { type Context, type OutputFormat, outputOption } from '../context';
import { clean, table, toJson, toYaml, truncate } from '../format';

const ERROR_WIDTH = 60;

/** `42s`, `3m5s`, `2h4m`, `3d2h`: an age as kubectl prints it, two units at most. */
export function formatAge(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '';
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  const two = (a: number, ua: string, b: number, ub: string) => `${a}${ua}${b > 0 ? `${b}${ub}` : ''}`;
  if (s < 3600) return two(Math.floor(s / 60), 'm', s % 60, 's');
  if (s < 86_400) return two(Math.floor(s / 3600), 'h', Math.floor((s % 3600) / 60), 'm');
  return two(Math.floor(s / 86_400), 'd', Math.floor((s % 86_400) / 3600), 'h');
}

/** `0` when caught up, `3 (12s)`: revisions behind and for how long. */
export function formatLag(n: NodeItem): string {
  if (n.lagRevisions <= 0) return String(n.lagRevisions);
  const age = formatAge(n.lagSeconds);
  return age ? `${n.lagRevisions} (${age})` : String(n.lagRevisions);
}

/** What went wrong: the agent's error, or for an ERROR without one (ahead of the head) the reason. */
export function errorCell(n: NodeItem): string {
  const text = n.lastError ?? (n.state === 'ERROR' ? n.message : null);
  if (!text) return '';
  const where = n.lastError && n.failedRevision !== null ? `rev ${n.failedRevision}: ` : '';
  return truncate(clean(`${where}${text}`), ERROR_WIDTH);
}

/** NODE STATE APPLIED HEAD LAG ERROR HEARTBEAT, like `istioctl proxy-status`, by revision. */
export function nodesTable(r: NodesResponse): string {
  return table(
    ['NODE', 'STATE', 'APPLIED', 'HEAD', 'LAG', 'ERROR', 'HEARTBEAT'],
    r.items.map((n) => [
      n.node,
      n.state,
      n.appliedRevision,
      r.headRevision,
      formatLag(n),
      errorCell(n),
      `${formatAge(n.heartbeatAgeSeconds)} ago`,
    ]),
  );
}

export function fetchNodes(client: MeshClient): Promise<NodesResponse> {
  return client.get<NodesResponse>('/v1/nodes');
}

export function registerStatus(program: Command, ctx: Context): void {
  program
    .command('status')
    .description('sync state of every node against the head revision (SYNCED, STALE, ERROR, OFFLINE)')
    .addOption(outputOption())
    .addHelpText(
      'after',
      '\nSYNCED: at the head; STALE: behind (LAG = revisions behind and for how long); ERROR: behind\n' +
        'with a failed apply; OFFLINE: no heartbeat within the API timeout (MESH_NODE_OFFLINE_AFTER_MS).\n',
    )
    .action(async (opts: { output: OutputFormat }, cmd: Command) => {
      const r = await fetchNodes(ctx.client(cmd));
      if (opts.output === 'json') ctx.io.out(toJson(r));
      else if (opts.output === 'yaml') ctx.io.out(toYaml(r));
      else if (r.items.length === 0)
        ctx.io.err(
          `No nodes have reported status in cluster ${clean(r.cluster)} (head revision ${r.headRevision}).\n`,
        );
      else ctx.io.out(nodesTable(r));
    });
}
