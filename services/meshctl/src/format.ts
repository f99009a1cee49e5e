import { KINDS, parseSpec } from '@meshplane/domain';
import { Document } from 'yaml';
import type {
  AuditEntry,
  ChangeSet,
  ChangeSetHeader,
  ResourceDoc,
  ResourceHistoryEntry,
  StateDiff,
  StoredResource,
  VerifyResponse,
  WireEvent,
} from './api-types';

/*
 * Everything meshctl prints: tables, YAML/JSON documents, diffs, errors.
 * Pure string functions, so they are unit-tested without a server.
 */

export const OUTPUT_FORMATS = ['table', 'yaml', 'json'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

// --- primitives --------------------------------------------------------------

/**
 * Makes server-supplied text safe for a terminal: control characters (escape
 * sequences, newlines inside a cell) are shown escaped instead of interpreted.
 */
export function clean(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    if (c === '\r') return '\\r';
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}

export function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, Math.max(0, max - 1))}…`;
}

/** Left-aligned columns, two spaces apart, header row first; no trailing spaces. */
export function table(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = [
    headers,
    ...rows.map((r) => r.map((c) => (c === null || c === undefined ? '' : clean(String(c))))),
  ];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => [...(r[i] ?? '')].length)));
  return `${cells
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i]! - [...c].length)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}

/** `2024-05-01T12:00:00.123Z` → `2024-05-01T12:00:00Z`. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '';
  return iso.replace(/\.\d+Z$/, 'Z');
}

export function shortHash(hash: string | null | undefined): string {
  return hash ? hash.slice(0, 12) : '';
}

export function toJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** One YAML document; long strings are never folded so the output reads back byte for byte. */
export function toYaml(value: unknown, comment?: string): string {
  const text = new Document(value).toString({ lineWidth: 0 });
  return comment ? `# ${comment}\n${text}` : text;
}

/** A YAML stream: documents separated by `---`. */
export function toYamlStream(values: unknown[], comment?: string): string {
  if (values.length === 0) return comment ? `# ${comment}\n` : '';
  return values.map((v, i) => toYaml(v, i === 0 ? comment : undefined)).join('---\n');
}

// --- resources ---------------------------------------------------------------

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (typeof v !== 'object' || v === null) return v;
  return Object.fromEntries(
    Object.keys(v)
      .sort()
      .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
  );
}

/**
 * A spec with its fields in the order the schema declares them (vip, ports,
 * selector...): the API stores specs as jsonb, which reorders keys. A spec the
 * schema does not know (a newer server) gets its keys sorted instead.
 */
export function orderSpec(kind: string, spec: Record<string, unknown>): Record<string, unknown> {
  try {
    return parseSpec(kind, spec);
  } catch {
    return sortKeys(spec) as Record<string, unknown>;
  }
}

/** A stored resource as a manifest: what `apply -f` accepts (no version, no origin). */
export function manifestOf(r: ResourceDoc): ResourceDoc {
  return { kind: r.kind, namespace: r.namespace, name: r.name, spec: orderSpec(r.kind, r.spec) };
}

export function labels(m: unknown): string {
  if (typeof m !== 'object' || m === null) return '';
  return Object.entries(m as Record<string, unknown>)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

function ports(spec: Record<string, unknown>): string {
  if (!Array.isArray(spec.ports)) return '';
  return spec.ports
    .map((p: { port?: unknown; targetPort?: unknown; protocol?: unknown } | number) => {
      if (typeof p === 'number') return String(p);
      const target = p.targetPort !== undefined && p.targetPort !== p.port ? `:${p.targetPort}` : '';
      return `${p.port}${target}/${p.protocol}`;
    })
    .join(',');
}

/** Weighted backends as percentages of the total weight: `80% version=v1; 20% version=v2`. */
export function backends(spec: Record<string, unknown>): string {
  if (!Array.isArray(spec.backends)) return '';
  const list = spec.backends as { selector?: unknown; weight?: unknown }[];
  const total = list.reduce((s, b) => s + (typeof b.weight === 'number' ? b.weight : 0), 0);
  return list
    .map((b) => {
      const w = typeof b.weight === 'number' ? b.weight : 0;
      const pct = total > 0 ? Math.round((w / total) * 1000) / 10 : 0;
      return `${pct}% ${labels(b.selector)}`;
    })
    .join('; ');
}

function identities(spec: Record<string, unknown>): string {
  if (!Array.isArray(spec.from)) return '';
  return spec.from.map((f: { identity?: unknown }) => String(f.identity)).join(',');
}

const str = (v: unknown) => (v === undefined || v === null ? '' : String(v));

interface KindColumns {
  headers: string[];
  cells: (r: StoredResource) => string[];
}

const COLUMNS: Record<string, KindColumns> = {
  Service: {
    headers: ['VIP', 'PORTS', 'SELECTOR'],
    cells: (r) => [str(r.spec.vip), ports(r.spec), labels(r.spec.selector)],
  },
  Workload: {
    headers: ['ADDRESS', 'NODE', 'IDENTITY', 'WEIGHT', 'LABELS'],
    cells: (r) => [
      str(r.spec.address),
      str(r.spec.node),
      str(r.spec.identity),
      str(r.spec.weight ?? 1),
      labels(r.spec.labels),
    ],
  },
  Route: {
    headers: ['SERVICE', 'BACKENDS'],
    cells: (r) => [str(r.spec.service), backends(r.spec)],
  },
  AuthorizationPolicy: {
    headers: ['SERVICE', 'ACTION', 'FROM', 'PORTS'],
    cells: (r) => [str(r.spec.service), str(r.spec.action), identities(r.spec), ports(r.spec) || '*'],
  },
};

function kindOrder(kind: string): number {
  const i = (KINDS as readonly string[]).indexOf(kind);
  return i < 0 ? KINDS.length : i;
}

/** Services, then Workloads, Routes, AuthorizationPolicies; by namespace and name within a kind. */
export function inKindOrder<R extends { kind: string; namespace: string; name: string }>(items: R[]): R[] {
  const key = (r: R) => `${r.namespace}/${r.name}`;
  return [...items].sort(
    (a, b) => kindOrder(a.kind) - kindOrder(b.kind) || (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0),
  );
}

/**
 * Resources as tables, one per kind (in the order Service, Workload, Route,
 * AuthorizationPolicy). With `prefixKind` (a listing of every kind) names read
 * `service/productpage`, as in `kubectl get all`.
 */
export function resourcesTable(items: StoredResource[], prefixKind: boolean): string {
  const byKind = new Map<string, StoredResource[]>();
  for (const r of inKindOrder(items)) {
    const list = byKind.get(r.kind);
    if (list) list.push(r);
    else byKind.set(r.kind, [r]);
  }
  const tables: string[] = [];
  for (const [kind, list] of byKind) {
    const cols = COLUMNS[kind] ?? {
      headers: ['SPEC'],
      cells: (r: StoredResource) => [JSON.stringify(r.spec)],
    };
    const name = (r: StoredResource) => (prefixKind ? `${kind.toLowerCase()}/${r.name}` : r.name);
    const origin = list.some((r) => r.origin !== undefined);
    tables.push(
      table(
        ['NAMESPACE', 'NAME', ...cols.headers, 'VERSION', ...(origin ? ['ORIGIN'] : [])],
        list.map((r) => [
          r.namespace,
          name(r),
          ...cols.cells(r),
          r.version,
          ...(origin ? [r.origin ?? '-'] : []),
        ]),
      ),
    );
  }
  return tables.join('\n');
}

// --- revisions, history, audit ---------------------------------------------

const REASON_WIDTH = 60;

export function revisionsTable(items: ChangeSetHeader[]): string {
  return table(
    ['REVISION', 'TIME', 'ACTOR', 'EVENTS', 'RESTORED-FROM', 'HASH', 'REASON'],
    items.map((c) => [
      c.revision,
      formatTime(c.createdAt),
      c.actor,
      c.eventCount,
      c.restoredFromRevision ?? '',
      shortHash(c.hash),
      truncate(clean(c.reason), REASON_WIDTH),
    ]),
  );
}

/** What an event did, as kubectl words it. */
export function eventAction(e: Pick<WireEvent, 'op' | 'prevVersion'>): string {
  if (e.op === 'delete') return 'deleted';
  return e.prevVersion === null ? 'created' : 'configured';
}

export function resourceHistoryTable(items: ResourceHistoryEntry[]): string {
  return table(
    ['REVISION', 'TIME', 'ACTOR', 'ACTION', 'REASON'],
    items.map((e) => [
      e.revision,
      formatTime(e.createdAt),
      e.actor,
      eventAction(e),
      truncate(clean(e.reason), REASON_WIDTH),
    ]),
  );
}

export function changeSetText(cs: ChangeSet): string {
  const head: [string, string | number][] = [
    ['Revision', cs.revision],
    ['Time', formatTime(cs.createdAt)],
    ['Actor', cs.actor],
    ['Reason', cs.reason],
    ['Change', cs.changeId],
    ['Cluster', cs.cluster],
  ];
  if (cs.restoredFromRevision !== null) head.push(['Restored from', `revision ${cs.restoredFromRevision}`]);
  if (cs.requestId) head.push(['Request', cs.requestId]);
  if (cs.idempotencyKey) head.push(['Idempotency key', cs.idempotencyKey]);
  if (cs.traceContext) head.push(['Trace', cs.traceContext]);
  head.push(['Hash', cs.hash], ['Previous hash', cs.prevHash]);
  const width = Math.max(...head.map(([k]) => k.length)) + 1;
  const lines = head.map(([k, v]) => `${`${k}:`.padEnd(width)} ${clean(String(v))}`);
  const events = table(
    ['SEQ', 'ACTION', 'KIND', 'NAMESPACE', 'NAME', 'PREV-VERSION'],
    cs.events.map((e) => [e.seq, eventAction(e), e.kind, e.namespace, e.name, e.prevVersion ?? '-']),
  );
  return `${lines.join('\n')}\n\nEvents (${cs.events.length}):\n${events}`;
}

export function auditTable(items: AuditEntry[]): string {
  return table(
    ['TIME', 'TYPE', 'ACTOR', 'REVISION', 'EVENTS', 'DETAIL'],
    items.map((e) =>
      e.type === 'change'
        ? [
            formatTime(e.time),
            e.restoredFromRevision !== null ? 'rollback' : 'change',
            e.actor,
            e.revision,
            e.eventCount,
            truncate(
              clean(
                e.restoredFromRevision !== null
                  ? `to revision ${e.restoredFromRevision}: ${e.reason}`
                  : e.reason,
              ),
              REASON_WIDTH,
            ),
          ]
        : [
            formatTime(e.time),
            'token',
            e.actor,
            '',
            '',
            `${e.action} token ${clean(e.tokenName)} (${e.role}, id ${e.tokenId})`,
          ],
    ),
  );
}

export function verifyText(v: VerifyResponse): string {
  if (v.ok)
    return v.headRevision === 0
      ? 'hash chain OK: the log is empty\n'
      : `hash chain OK: revisions ${v.from}..${v.to} verified; head revision ${v.headRevision}, hash ${v.headHash}\n`;
  return (
    `hash chain BROKEN at revision ${v.firstBadRevision}: ${clean(v.reason)}\n` +
    `  expected ${clean(v.expected)}\n  actual   ${clean(v.actual)}\n` +
    `  (checked revisions ${v.from}..${v.to})\n`
  );
}

// --- diffs -------------------------------------------------------------------

/** Line diff by longest common subsequence; inputs are small (one spec each). */
export function lineDiff(a: string[], b: string[]): { op: ' ' | '-' | '+'; line: string }[] {
  const n = a.length;
  const m = b.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const out: { op: ' ' | '-' | '+'; line: string }[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      out.push({ op: ' ', line: a[i]! });
      i++;
      j++;
    } else if (lcs[i + 1]![j]! >= lcs[i]![j + 1]!) out.push({ op: '-', line: a[i++]! });
    else out.push({ op: '+', line: b[j++]! });
  }
  while (i < n) out.push({ op: '-', line: a[i++]! });
  while (j < m) out.push({ op: '+', line: b[j++]! });
  return out;
}

function specLines(kind: string, spec: Record<string, unknown>): string[] {
  return toYaml(orderSpec(kind, spec)).trimEnd().split('\n').map(clean);
}

const refOf = (r: { kind: string; namespace: string; name: string }) => `${r.kind} ${r.namespace}/${r.name}`;

export function diffSummary(d: StateDiff): string {
  if (d.added.length + d.removed.length + d.changed.length === 0) return 'no differences';
  return `${d.added.length} added, ${d.changed.length} changed, ${d.removed.length} removed`;
}

/**
 * A readable diff of two states: each added resource with its spec (`+`),
 * each removed one (`-`), and for each changed one a line diff of its spec.
 */
export function diffText(d: StateDiff, withSummary = true): string {
  const out: string[] = [];
  for (const r of d.added) {
    out.push(`+ ${refOf(r)} (added)${r.origin ? ` from cluster ${clean(r.origin)}` : ''}`);
    for (const l of specLines(r.kind, r.spec)) out.push(`+   ${l}`);
  }
  for (const c of d.changed) {
    out.push(`~ ${refOf(c)} (changed)`);
    if (c.beforeOrigin !== c.afterOrigin)
      out.push(`    origin: ${clean(c.beforeOrigin ?? 'local')} -> ${clean(c.afterOrigin ?? 'local')}`);
    for (const { op, line } of lineDiff(specLines(c.kind, c.before), specLines(c.kind, c.after)))
      out.push(op === ' ' ? `    ${line}` : `${op}   ${line}`);
  }
  for (const r of d.removed) {
    out.push(`- ${refOf(r)} (removed)`);
    for (const l of specLines(r.kind, r.spec)) out.push(`-   ${l}`);
  }
  if (withSummary) out.push(diffSummary(d));
  return out.length > 0 ? `${out.join('\n')}\n` : '';
}

// --- errors ------------------------------------------------------------------

/** A detail line: `  apply[3].spec.vip (bad.yaml:12): must be an IPv4 address`. */
export function detailLines(
  details: { path: string; message: string }[],
  annotate: (path: string) => string | undefined = () => undefined,
): string[] {
  return details.map((d) => {
    const where = annotate(d.path);
    const path = d.path || '(request)';
    return `  ${clean(path)}${where ? ` (${clean(where)})` : ''}: ${clean(d.message)}`;
  });
}
