import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { C_TYPE, type FieldType, HEADER_CONSTANTS, MAPS, STRUCTS, type StructDef, TYPE_SIZE } from './layout';

/*
 * The table in layout.ts against bpf/mesh_maps.h, three ways: the table is
 * self-consistent (natural alignment, explicit padding), a C-layout
 * computation over the parsed header gives the same offsets, and the real
 * compiler agrees (a probe printing sizeof/offsetof). Issue 5 adds BTF.
 */

const HEADER = path.resolve(__dirname, '../../../bpf/mesh_maps.h');
const text = fs.readFileSync(HEADER, 'utf8');
const structs = Object.values(STRUCTS) as StructDef[];

const TYPES_BY_C: Record<string, FieldType> = Object.fromEntries(
  Object.entries(C_TYPE).map(([t, c]) => [c, t as FieldType]),
);

interface ParsedField {
  name: string;
  type: FieldType;
  count: number;
  offset: number;
}

/** Parses `struct x { type name[N]; ... };` and lays it out with C's natural-alignment rules. */
function parseHeaderStructs(src: string): Map<string, { size: number; fields: ParsedField[] }> {
  const noComments = src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  const defines = new Map<string, number>();
  for (const m of noComments.matchAll(/^#define\s+(\w+)\s+(0x[0-9a-fA-F]+|\d+)\s*$/gm))
    defines.set(m[1]!, Number(m[2]));
  const out = new Map<string, { size: number; fields: ParsedField[] }>();
  for (const m of noComments.matchAll(/struct\s+(\w+)\s*\{([^}]*)\}\s*;/g)) {
    const fields: ParsedField[] = [];
    let offset = 0;
    let align = 1;
    for (const decl of m[2]!
      .split(';')
      .map((d) => d.trim())
      .filter(Boolean)) {
      const f = /^(\w+)\s+(\w+)(?:\[(\w+)\])?$/.exec(decl.replace(/\s+/g, ' '));
      if (!f) throw new Error(`cannot parse field "${decl}" of struct ${m[1]}`);
      const type = TYPES_BY_C[f[1]!];
      if (!type) throw new Error(`unknown type ${f[1]} in struct ${m[1]}`);
      const count = f[3] === undefined ? 1 : (defines.get(f[3]) ?? Number(f[3]));
      const size = TYPE_SIZE[type];
      offset = Math.ceil(offset / size) * size;
      fields.push({ name: f[2]!, type, count, offset });
      offset += size * count;
      align = Math.max(align, size);
    }
    out.set(m[1]!, { size: Math.ceil(offset / align) * align, fields });
  }
  return out;
}

describe('map layout table', () => {
  it.each(structs.map((s) => [s.name, s] as const))(
    '%s is naturally aligned with explicit padding',
    (_n, s) => {
      let end = 0;
      let align = 1;
      for (const f of s.fields) {
        const size = TYPE_SIZE[f.type];
        expect(f.offset % size).toBe(0);
        // No implicit hole: each field starts where the previous ended.
        expect(f.offset).toBe(end);
        end = f.offset + size * f.count;
        align = Math.max(align, size);
      }
      expect(end).toBe(s.size);
      expect(s.size % align).toBe(0);
    },
  );

  it('map names fit BPF object names and name existing structs', () => {
    for (const [key, m] of Object.entries(MAPS)) {
      expect(m.name).toBe(key);
      expect(m.name.length).toBeLessThanOrEqual(15);
      expect(STRUCTS[m.key]).toBeDefined();
      if (m.value) expect(STRUCTS[m.value]).toBeDefined();
    }
  });
});

describe('bpf/mesh_maps.h agrees with the table', () => {
  const parsed = parseHeaderStructs(text);

  it('defines exactly the structs of the table', () => {
    expect([...parsed.keys()].sort()).toEqual(structs.map((s) => s.name).sort());
  });

  it.each(structs.map((s) => [s.name, s] as const))('%s: same fields, types, offsets and size', (name, s) => {
    const h = parsed.get(name)!;
    expect(h.size).toBe(s.size);
    expect(h.fields).toEqual(
      s.fields.map((f) => ({ name: f.name, type: f.type, count: f.count, offset: f.offset })),
    );
  });

  it('#define constants match', () => {
    for (const [name, value] of Object.entries(HEADER_CONSTANTS)) {
      const m = new RegExp(`^#define\\s+${name}\\s+(0x[0-9a-fA-F]+|\\d+)`, 'm').exec(text);
      expect({ name, value: m ? Number(m[1]) : undefined }).toEqual({ name, value });
    }
  });

  const cc = spawnSync('cc', ['--version']).status === 0;
  (cc ? it : it.skip)('a compiled C probe reports the same sizeof and offsetof', () => {
    const lines = structs.flatMap((s) => [
      `printf("${s.name} %zu\\n", sizeof(struct ${s.name}));`,
      ...s.fields.map((f) => `printf("${s.name}.${f.name} %zu\\n", offsetof(struct ${s.name}, ${f.name}));`),
    ]);
    const src = `#include <stddef.h>\n#include <stdio.h>\n#include "${HEADER}"\nint main(void){\n${lines.join('\n')}\nreturn 0;}\n`;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-layout-'));
    try {
      fs.writeFileSync(path.join(dir, 'probe.c'), src);
      const build = spawnSync(
        'cc',
        ['-Wall', '-Werror', '-o', path.join(dir, 'probe'), path.join(dir, 'probe.c')],
        {
          encoding: 'utf8',
        },
      );
      expect(build.stderr).toBe('');
      const run = spawnSync(path.join(dir, 'probe'), { encoding: 'utf8' });
      const want = structs.flatMap((s) => [
        `${s.name} ${s.size}`,
        ...s.fields.map((f) => `${s.name}.${f.name} ${f.offset}`),
      ]);
      expect(run.stdout.trim().split('\n')).toEqual(want);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  if (!cc && process.env.CI === 'true') it('has a C compiler in CI', () => expect(cc).toBe(true));
});
