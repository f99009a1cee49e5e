/**
 * In-process V8 CPU profiles (the profiler behind `node --cpu-prof`) of one phase of a benchmark,
 * summarized by where the time goes: by package / project folder (self and inclusive), the
 * hottest functions and the hottest source lines. Only the calling thread is profiled.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { SourceMap } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
  /** Samples of this node by source line (1-based), as V8 reports them. */
  positionTicks?: Array<{ line: number; ticks: number }>;
}
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** Runs `fn` under the V8 CPU profiler of this thread; `file` also gets the raw profile (.cpuprofile). */
export async function withCpuProfile<T>(
  fn: () => Promise<T>,
  opts: { samplingIntervalUs?: number; file?: string } = {},
): Promise<{ value: T; profile: CpuProfile }> {
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: opts.samplingIntervalUs ?? 200 });
    await session.post('Profiler.start');
    let value: T;
    try {
      value = await fn();
    } catch (err) {
      // Stop even when fn failed, so the profiler never keeps running.
      await session.post('Profiler.stop').catch(() => undefined);
      throw err;
    }
    const { profile } = (await session.post('Profiler.stop')) as { profile: CpuProfile };
    if (opts.file) writeFileSync(opts.file, JSON.stringify(profile));
    return { value, profile };
  } finally {
    session.disconnect();
  }
}

/**
 * A frame's group: `(gc)`, `(idle)`, `(program)`, an npm package (`express`, `@nestjs/core`), a
 * Node built-in (`node:http`, `node:internal/streams`), or a project folder two levels deep
 * (`services/api`, `libs/event-store`, `bench/lib`).
 */
export function frameGroup(f: CallFrame): string {
  const { url, functionName } = f;
  if (!url) {
    if (functionName === '(garbage collector)') return '(gc)';
    if (functionName === '(idle)') return '(idle)';
    if (functionName === '(program)') return '(program)';
    if (functionName === '(root)') return '(root)';
    return `(native ${functionName || 'anonymous'})`;
  }
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) {
    const p = url.slice(5).split('/');
    if (p[0] === 'internal') return `node:internal/${p[1]?.replace(/\.js$/, '') ?? ''}`;
    return `node:${p[0]!.replace(/\.js$/, '')}`;
  }
  const d = url.indexOf('/dist/');
  if (d >= 0) {
    const p = url.slice(d + 6).split('/');
    return p.length > 2 ? `${p[0]}/${p[1]}` : p[0]!;
  }
  return path.basename(url);
}

export interface ProfileSummary {
  /** Sampled time, ms. */
  totalMs: number;
  /** Time the thread was busy (not idle), ms. */
  busyMs: number;
  /** Self time by group, ms, largest first. */
  selfByGroup: Record<string, number>;
  /** Inclusive time by group: samples with any frame of the group on the stack, ms. */
  inclusiveByGroup: Record<string, number>;
  /** Hottest functions by self time: `name (file:line)` → ms. */
  topSelf: Record<string, number>;
  /**
   * Hottest source lines by self time: `file:line` → ms, in the TypeScript source where the build's
   * source map says so. A function's self time split by its samples' lines: where a function like
   * a compile spends its time is usually one lookup, not the function as a whole.
   */
  hotLines: Record<string, number>;
  /** Inclusive time of frames whose function name matches one of `marks` (each counted once per sample). */
  marks: Record<string, number>;
}

const round1 = (x: number) => Math.round(x * 10) / 10;

function sortedRecord(m: Map<string, number>, limit = Number.POSITIVE_INFINITY): Record<string, number> {
  return Object.fromEntries(
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([k, v]) => [k, round1(v)]),
  );
}

/** Summarizes a profile; `marks` are function names (exact) whose inclusive time is reported. */
export function summarizeProfile(
  profile: CpuProfile,
  opts: {
    top?: number;
    marks?: string[];
    minGroupMs?: number;
    /**
     * Names a sampled line (`url`, 1-based line, the function's first line), or undefined when
     * the line cannot be the function's own; default: through the build's source maps.
     */
    lineOf?: (url: string, line: number, fnLine: number) => string | undefined;
  } = {},
): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  const self = new Map<number, number>();
  // timeDeltas[i] is the time *before* sample i; attribute the gap after each sample to it.
  for (let i = 0; i < samples.length; i++) {
    const dt = (deltas[i + 1] ?? 0) / 1000;
    self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + dt);
  }
  const marks = new Set(opts.marks ?? []);
  const selfByGroup = new Map<string, number>();
  const inclusiveByGroup = new Map<string, number>();
  const topSelf = new Map<string, number>();
  const hotLines = new Map<string, number>();
  const markTime = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, ms] of self) {
    const node = byId.get(id)!;
    const g = frameGroup(node.callFrame);
    total += ms;
    if (g === '(idle)') idle += ms;
    selfByGroup.set(g, (selfByGroup.get(g) ?? 0) + ms);
    const f = node.callFrame;
    const label = `${f.functionName || '(anonymous)'} (${f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : 'native'})`;
    topSelf.set(label, (topSelf.get(label) ?? 0) + ms);
    addLines(hotLines, node, ms, opts.lineOf ?? sourceLine);
    const groups = new Set<string>();
    const marked = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const cf = byId.get(cur)!.callFrame;
      groups.add(frameGroup(cf));
      if (marks.has(cf.functionName)) marked.add(cf.functionName);
    }
    for (const gr of groups) inclusiveByGroup.set(gr, (inclusiveByGroup.get(gr) ?? 0) + ms);
    for (const m of marked) markTime.set(m, (markTime.get(m) ?? 0) + ms);
  }
  const minGroup = opts.minGroupMs ?? 0;
  const drop = (m: Map<string, number>) => {
    for (const [k, v] of m) if (v < minGroup || k === '(root)') m.delete(k);
    return m;
  };
  return {
    totalMs: round1(total),
    busyMs: round1(total - idle),
    selfByGroup: sortedRecord(drop(selfByGroup)),
    inclusiveByGroup: sortedRecord(drop(inclusiveByGroup)),
    topSelf: sortedRecord(topSelf, opts.top ?? 25),
    hotLines: sortedRecord(hotLines, opts.top ?? 25),
    marks: sortedRecord(markTime),
  };
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) return url.slice(nm + '/node_modules/'.length);
  const d = url.indexOf('/dist/');
  if (d >= 0) return url.slice(d + 6);
  return url.replace(/^file:\/\//, '');
}

/**
 * Splits a node's self time over its sampled lines, named in the original source where a map
 * exists. V8 reports the lines of inlined callees as if they were the caller's (in the caller's
 * file): a line before the function, or one with no code, is counted as the function's inlined
 * code instead of being named wrongly. One that lands on a code line of the function cannot be told apart.
 */
function addLines(
  into: Map<string, number>,
  node: ProfileNode,
  ms: number,
  lineOf: (url: string, line: number, fnLine: number) => string | undefined,
): void {
  const ticks = node.positionTicks ?? [];
  const total = ticks.reduce((n, t) => n + t.ticks, 0);
  const url = node.callFrame.url;
  if (total === 0 || !url) return;
  for (const t of ticks) {
    const at =
      lineOf(url, t.line, node.callFrame.lineNumber + 1) ??
      `${node.callFrame.functionName || '(anonymous)'} (inlined callees)`;
    into.set(at, (into.get(at) ?? 0) + (ms * t.ticks) / total);
  }
}

const sourceMaps = new Map<string, { map: SourceMap; lines: string[] } | undefined>();

/**
 * The original `source` and 1-based `line` of generated line `line` (1-based) of a file whose text
 * is `generated`, or undefined where the map says nothing.
 */
export function originalLine(
  map: SourceMap,
  generated: readonly string[],
  line: number,
): { source: string; line: number } | undefined {
  const text = generated[line - 1];
  if (!isCodeLine(text)) return undefined;
  // The line's first token: column 0 of an indented line belongs to the line before it.
  const e = map.findEntry(line - 1, text.search(/\S/)) as { originalSource?: string; originalLine?: number };
  return e.originalSource === undefined || e.originalLine === undefined
    ? undefined
    : { source: e.originalSource, line: e.originalLine + 1 };
}

/** A line with code on it: not blank, not a comment line, not past the end of the file. */
export function isCodeLine(text: string | undefined): text is string {
  const t = text?.trimStart();
  return !!t && !/^(\*|\/\*|\/\/)/.test(t);
}

/**
 * `file:line` of a generated line, in the original source when the build wrote `<file>.map`;
 * undefined for a line that cannot be code of the function starting at `fnLine` (see addLines).
 */
export function sourceLine(url: string, line: number, fnLine = 0): string | undefined {
  if (line < fnLine) return undefined;
  const file = url.startsWith('file://') ? fileURLToPath(url) : url;
  if (!sourceMaps.has(file)) {
    let found: { map: SourceMap; lines: string[] } | undefined;
    try {
      if (existsSync(`${file}.map`))
        found = {
          map: new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8'))),
          lines: readFileSync(file, 'utf8').split('\n'),
        };
    } catch {
      found = undefined; // an unreadable map: the generated line is still an answer
    }
    sourceMaps.set(file, found);
  }
  const found = sourceMaps.get(file);
  if (!found) return `${shortUrl(url)}:${line}`;
  if (!isCodeLine(found.lines[line - 1])) return undefined;
  const orig = originalLine(found.map, found.lines, line);
  if (!orig) return `${shortUrl(url)}:${line}`; // code the compiler added (helpers): its own line
  const src = orig.source.startsWith('file://')
    ? fileURLToPath(orig.source)
    : path.resolve(path.dirname(file), orig.source);
  return `${projectPath(src)}:${orig.line}`;
}

let root: string | undefined;

/** A path inside the repository (`libs/dataplane/src/incremental.ts`): below the nearest package-lock.json. */
function projectPath(file: string): string {
  if (root === undefined) {
    root = process.cwd();
    for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir))
      if (existsSync(path.join(dir, 'package-lock.json'))) {
        root = dir;
        break;
      }
  }
  const rel = path.relative(root, file);
  return rel.startsWith('..') ? file : rel;
}
