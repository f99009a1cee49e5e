import { SourceMap } from 'node:module';
import ts from 'typescript';
import { type CpuProfile, isCodeLine, originalLine, summarizeProfile } from './cpu-profile';

describe('bench/lib cpu-profile', () => {
  it("splits a function's self time over its sampled lines", () => {
    const profile: CpuProfile = {
      startTime: 0,
      endTime: 4000,
      nodes: [
        { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1 }, children: [2] },
        {
          id: 2,
          callFrame: { functionName: 'update', url: 'file:///x/dist/libs/a.js', lineNumber: 9 },
          positionTicks: [
            { line: 12, ticks: 3 },
            { line: 15, ticks: 1 },
          ],
        },
      ],
      samples: [2, 2, 2, 2, 1],
      timeDeltas: [0, 1000, 1000, 1000, 1000],
    };
    const s = summarizeProfile(profile, { lineOf: (url, line) => `${url.split('/').pop()}:${line}` });
    expect(s.topSelf['update (libs/a.js:10)']).toBe(4);
    expect(s.hotLines).toEqual({ 'a.js:12': 3, 'a.js:15': 1 });
    // A line the function cannot hold (V8 names an inlined callee's line in the caller's file).
    const inlined = summarizeProfile(profile, {
      lineOf: (url, line, fnLine) =>
        line === 15 || line < fnLine ? undefined : `${url.split('/').pop()}:${line}`,
    });
    expect(inlined.hotLines).toEqual({ 'a.js:12': 3, 'update (inlined callees)': 1 });
  });

  it('maps a generated line back to its TypeScript line, indented or not', () => {
    const src = [
      'export function f(m: Map<string, number>, k: string): number {',
      '  const n = m.get(k) ?? 0;',
      '',
      '  return n + 1;',
      '}',
    ].join('\n');
    const out = ts.transpileModule(src, {
      compilerOptions: { sourceMap: true, module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 },
      fileName: 'f.ts',
    });
    const generated = out.outputText.split('\n');
    const map = new SourceMap(JSON.parse(out.sourceMapText!));
    const at = (needle: string) => {
      const i = generated.findIndex((l) => l.includes(needle));
      if (i < 0) throw new Error(`no generated line holds ${needle}`); // else the checks below prove nothing
      return i + 1;
    };
    expect(originalLine(map, generated, at('m.get(k)'))).toEqual({ source: 'f.ts', line: 2 });
    expect(originalLine(map, generated, at('return n + 1'))).toEqual({ source: 'f.ts', line: 4 });
    // A line without code (past the end, or a comment) has no original.
    expect(originalLine(map, generated, generated.length + 5)).toBeUndefined();
    expect(originalLine(map, generated, at('sourceMappingURL'))).toBeUndefined();
    expect(isCodeLine('  return n + 1;')).toBe(true);
    expect(isCodeLine('   * a doc comment')).toBe(false);
    expect(isCodeLine('')).toBe(false);
  });
});
