import type { Command } from 'commander';
import { type Context, type OutputFormat, outputOption, parseRevisionArg } from '../context';
import { clean, toJson, toYaml, truncate } from '../format';

/** `GET /v1/revisions/:rev/propagation` as it arrives over the wire (times are ISO strings). */
export interface PropagationNode {
  node: string;
  state: 'APPLIED' | 'PENDING' | 'ERROR' | 'OFFLINE' | string;
  appliedRevision: number;
  appliedAt: string | null;
  latencyMs: number | null;
  /** When the node began the apply that reached the revision, if the API reports it. */
  receivedAt?: string | null;
  detail: string | null;
}

export interface PropagationResponse {
  revision: number;
  committedAt: string;
  publishedAt: string | null;
  publishLatencyMs: number | null;
  traceId?: string | null;
  nodes: PropagationNode[];
}

const BAR_WIDTH = 40;
const DETAIL_WIDTH = 60;

/** `850ms`, `1.25s`, `2m5s`: a latency as an operator reads it. */
export function formatLatency(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '';
  const v = Math.max(0, ms);
  if (v < 1000) return `${Math.round(v)}ms`;
  if (v < 60_000) return `${(v / 1000).toFixed(2).replace(/\.?0+$/, '')}s`;
  const s = Math.round(v / 1000);
  return `${Math.floor(s / 60)}m${s % 60 > 0 ? `${s % 60}s` : ''}`;
}

/**
 * One bar of the waterfall: blank up to `from`, then `█` up to `to` (at least one cell, so an
 * instant step is still visible), on a scale where `total` fills `width` cells.
 */
export function bar(from: number, to: number, total: number, width = BAR_WIDTH): string {
  const cell = (ms: number) =>
    total <= 0 ? 0 : Math.round((Math.max(0, Math.min(ms, total)) / total) * width);
  const start = Math.min(cell(from), width - 1);
  const end = Math.max(start + 1, cell(to));
  return `${' '.repeat(start)}${'█'.repeat(end - start)}`.padEnd(width);
}

interface Step {
  label: string;
  /** Offsets from the commit, in ms; `to` undefined = not reached. */
  from: number;
  to: number | undefined;
  note: string;
}

const since = (iso: string | null | undefined, t0: number): number | undefined =>
  iso ? Date.parse(iso) - t0 : undefined;

/**
 * The terminal waterfall of one revision: committed, published, and per node received (when
 * known) and applied, each with its latency from the commit, then the trace id to open in
 * Jaeger or Tempo. Nodes are sorted by when they applied; those that did not come last with why.
 */
export function traceWaterfall(r: PropagationResponse, width = BAR_WIDTH): string {
  const t0 = Date.parse(r.committedAt);
  const published = since(r.publishedAt, t0);
  const steps: Step[] = [{ label: 'committed', from: 0, to: 0, note: r.committedAt }];
  steps.push({
    label: 'published',
    from: 0,
    to: published,
    note:
      published === undefined
        ? 'not published yet (or aged out of the stream)'
        : `+${formatLatency(published)}`,
  });
  const nodes = [...r.nodes].sort(
    (a, b) =>
      (a.latencyMs ?? Number.POSITIVE_INFINITY) - (b.latencyMs ?? Number.POSITIVE_INFINITY) ||
      a.node.localeCompare(b.node),
  );
  for (const n of nodes) {
    const applied = n.appliedAt ? (n.latencyMs ?? since(n.appliedAt, t0)) : undefined;
    const received = since(n.receivedAt, t0);
    if (received !== undefined && applied !== undefined)
      steps.push({
        label: `${n.node} received`,
        from: published ?? 0,
        to: received,
        note: `+${formatLatency(received)}`,
      });
    const note =
      applied !== undefined
        ? `+${formatLatency(applied)}${received !== undefined ? ` (apply ${formatLatency(applied - received)})` : ''}`
        : `${n.state}${n.detail ? `: ${truncate(clean(n.detail), DETAIL_WIDTH)}` : ''}`;
    steps.push({
      label: `${n.node} ${applied !== undefined ? 'applied' : n.state === 'APPLIED' ? 'applied' : n.state.toLowerCase()}`,
      from: received ?? published ?? 0,
      to: applied,
      note: applied === undefined && n.state === 'APPLIED' ? `applied, time unknown` : note,
    });
  }
  const total = Math.max(1, ...steps.map((s) => s.to ?? 0));
  const labelWidth = Math.max(...steps.map((s) => s.label.length));
  const lines = [`revision ${r.revision}  trace ${r.traceId ?? '(none: written with tracing off)'}`];
  for (const s of steps) {
    const cells = s.to === undefined ? ' '.repeat(width) : bar(s.from, s.to, total, width);
    lines.push(`  ${s.label.padEnd(labelWidth)}  |${cells}|  ${s.note}`);
  }
  const applied = r.nodes.filter((n) => n.state === 'APPLIED').length;
  lines.push(
    `  ${applied}/${r.nodes.length} node${r.nodes.length === 1 ? '' : 's'} applied; scale: ${width} cells = ${formatLatency(total)}`,
  );
  if (r.traceId) lines.push(`  open in Jaeger or Tempo: trace id ${r.traceId}`);
  return `${lines.join('\n')}\n`;
}

export function registerTrace(program: Command, ctx: Context): void {
  program
    .command('trace')
    .description('waterfall of one revision: committed, published, applied on every node; with its trace id')
    .argument('<revision>', 'revision number')
    .addOption(outputOption())
    .action(async (revArg: string, opts: { output: OutputFormat }, cmd: Command) => {
      const rev = parseRevisionArg(revArg, 'REVISION');
      const r = await ctx.client(cmd).get<PropagationResponse>(`/v1/revisions/${rev}/propagation`);
      ctx.io.out(opts.output === 'json' ? toJson(r) : opts.output === 'yaml' ? toYaml(r) : traceWaterfall(r));
    });
}
