import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { isSeq, LineCounter, type Node, parseAllDocuments } from 'yaml';
import { InputError } from './errors';

/** One resource document from the input, and where it came from (`file:line`), for error messages. */
export interface ManifestDoc {
  value: Record<string, unknown>;
  source: string;
}

export const MANIFEST_EXTENSIONS = ['.yaml', '.yml', '.json'];

/** Where `offset` lies in `name`, as `name:line`. */
function at(name: string, counter: LineCounter, node: Node | null | undefined): string {
  const offset = node?.range?.[0];
  if (offset === undefined) return name;
  return `${name}:${counter.linePos(offset).line}`;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  return Array.isArray(v) ? 'a list' : `a ${typeof v}`;
}

/**
 * Every resource in a YAML (or JSON, which is YAML) stream. Documents are
 * separated by `---`; empty documents are skipped; a document that is a list
 * contributes each element (so `get -o json` output applies as is).
 */
export function parseManifests(text: string, name: string): ManifestDoc[] {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const out: ManifestDoc[] = [];
  for (const doc of docs) {
    const problem = doc.errors[0];
    if (problem) {
      const pos = lineCounter.linePos(problem.pos[0]);
      throw new InputError(problem.message.split('\n')[0]!, `${name}:${pos.line}:${pos.col}`);
    }
    if (doc.contents === null) continue;
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      throw new InputError(
        err instanceof Error ? err.message : String(err),
        at(name, lineCounter, doc.contents),
      );
    }
    if (value === null || value === undefined) continue;
    const items: { v: unknown; node: Node | null | undefined }[] = Array.isArray(value)
      ? value.map((v, i) => ({
          v,
          node: isSeq(doc.contents) ? (doc.contents.items[i] as Node) : doc.contents,
        }))
      : [{ v: value, node: doc.contents }];
    for (const { v, node } of items) {
      const source = at(name, lineCounter, node);
      if (typeof v !== 'object' || v === null || Array.isArray(v))
        throw new InputError(
          `a document must be a resource (a mapping with kind, namespace, name, spec), got ${typeName(v)}`,
          source,
        );
      out.push({ value: v as Record<string, unknown>, source });
    }
  }
  return out;
}

async function filesOf(target: string): Promise<string[]> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(target);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(code === 'ENOENT' ? 'no such file or directory' : String(err), target);
  }
  if (!info.isDirectory()) return [target];
  const names = (await readdir(target))
    .filter((n) => MANIFEST_EXTENSIONS.includes(path.extname(n).toLowerCase()))
    .sort();
  if (names.length === 0)
    throw new InputError(`no ${MANIFEST_EXTENSIONS.join(', ')} files in this directory`, target);
  const files: string[] = [];
  for (const n of names) {
    const p = path.join(target, n);
    if ((await stat(p)).isFile()) files.push(p);
  }
  return files;
}

/**
 * Reads `-f` targets in order: a file, a directory (its .yaml/.yml/.json files,
 * sorted by name, not recursive) or `-` (stdin, read once).
 */
export async function loadManifests(
  targets: string[],
  readStdin: () => Promise<string>,
): Promise<ManifestDoc[]> {
  const out: ManifestDoc[] = [];
  let stdinUsed = false;
  for (const target of targets) {
    if (target === '-') {
      if (stdinUsed) throw new InputError('stdin can be read only once', '-');
      stdinUsed = true;
      out.push(...parseManifests(await readStdin(), '<stdin>'));
      continue;
    }
    for (const file of await filesOf(target)) {
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        throw new InputError((err as Error).message, file);
      }
      out.push(...parseManifests(text, file));
    }
  }
  return out;
}

/** `apply -n NS`: fills in a missing namespace and refuses documents that name another one. */
export function withNamespace(docs: ManifestDoc[], namespace: string | undefined): ManifestDoc[] {
  if (namespace === undefined) return docs;
  return docs.map((d) => {
    const ns = d.value.namespace;
    if (ns === undefined) return { ...d, value: { ...d.value, namespace } };
    if (ns !== namespace)
      throw new InputError(
        `the document is in namespace ${JSON.stringify(ns)} but -n says "${namespace}"`,
        d.source,
      );
    return d;
  });
}
