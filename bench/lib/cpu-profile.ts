/**
 * In-process V8 CPU profiles (the profiler behind `node --cpu-prof`) of one phase of a benchmark,
 * summarized by where the time goes: by package / project folder (self and inclusive), and the
 * hottest functions. Only the calling thread is profiled.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
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
  opts: { top?: number; marks?: string[]; minGroupMs?: number } = {},
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
