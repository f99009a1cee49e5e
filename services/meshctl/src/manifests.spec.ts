import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { InputError } from './errors';
import { loadManifests, parseManifests, withNamespace } from './manifests';

const svc = (name: string) =>
  `kind: Service\nname: ${name}\nspec: {vip: 127.100.0.1, ports: [{port: 80, protocol: TCP}], selector: {app: x}}\n`;

describe('parseManifests', () => {
  test('multi-document YAML, skipping empty documents and comments, with line numbers', () => {
    const text = `# header\n---\n${svc('a')}---\n---\n# only a comment\n---\n${svc('b')}`;
    const docs = parseManifests(text, 'x.yaml');
    expect(docs.map((d) => d.value.name)).toEqual(['a', 'b']);
    expect(docs.map((d) => d.source)).toEqual(['x.yaml:3', 'x.yaml:10']);
    expect(docs[0]!.value.spec).toEqual({
      vip: '127.100.0.1',
      ports: [{ port: 80, protocol: 'TCP' }],
      selector: { app: 'x' },
    });
  });

  test('JSON, a single object or a list', () => {
    const one = { kind: 'Service', name: 'a', spec: {} };
    expect(parseManifests(JSON.stringify(one), 'a.json').map((d) => d.value)).toEqual([one]);
    const list = parseManifests(JSON.stringify([one, { ...one, name: 'b' }], null, 2), 'l.json');
    expect(list.map((d) => [d.value.name, d.source])).toEqual([
      ['a', 'l.json:2'],
      ['b', 'l.json:7'],
    ]);
  });

  test('YAML 1.2: yes/no and version-like strings stay strings; numbers stay numbers', () => {
    const [doc] = parseManifests(
      'kind: Workload\nname: w\nspec:\n  labels: {enabled: yes, v: v1}\n  weight: 3\n',
      'w',
    );
    expect(doc!.value.spec).toEqual({ labels: { enabled: 'yes', v: 'v1' }, weight: 3 });
  });

  test('a syntax error names file, line and column', () => {
    try {
      parseManifests('kind: Service\nname: [unclosed\n', 'bad.yaml');
      throw new Error('should have failed');
    } catch (err) {
      expect(err).toBeInstanceOf(InputError);
      expect((err as InputError).location).toMatch(/^bad\.yaml:\d+:\d+$/);
    }
  });

  test('duplicate keys are an error, not a silent overwrite', () => {
    expect(() => parseManifests('kind: Service\nname: a\nname: b\n', 'dup.yaml')).toThrow(
      /unique|duplicate/i,
    );
  });

  test('a document that is not a mapping is refused with its location', () => {
    expect(() => parseManifests(`${svc('a')}---\njust a string\n`, 's.yaml')).toThrow(InputError);
    try {
      parseManifests(`${svc('a')}---\njust a string\n`, 's.yaml');
    } catch (err) {
      expect((err as InputError).location).toBe('s.yaml:5');
    }
  });

  test('alias bombs are cut off', () => {
    const bomb = `a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n`;
    expect(() => parseManifests(bomb, 'bomb.yaml')).toThrow(InputError);
  });
});

describe('loadManifests', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'meshctl-'));
    writeFileSync(path.join(dir, 'b.yaml'), svc('b'));
    writeFileSync(path.join(dir, 'a.yml'), svc('a'));
    writeFileSync(path.join(dir, 'c.json'), JSON.stringify({ kind: 'Service', name: 'c', spec: {} }));
    writeFileSync(path.join(dir, 'README.md'), '# not a manifest');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('a directory applies its .yaml/.yml/.json files sorted by name; other files are ignored', async () => {
    const docs = await loadManifests([dir], async () => '');
    expect(docs.map((d) => d.value.name)).toEqual(['a', 'b', 'c']);
    expect(docs[0]!.source).toBe(`${path.join(dir, 'a.yml')}:1`);
  });

  test('files, then stdin, in the order given', async () => {
    const docs = await loadManifests([path.join(dir, 'b.yaml'), '-'], async () => svc('s'));
    expect(docs.map((d) => [d.value.name, d.source])).toEqual([
      ['b', `${path.join(dir, 'b.yaml')}:1`],
      ['s', '<stdin>:1'],
    ]);
  });

  test('a missing file and stdin twice are input errors', async () => {
    await expect(loadManifests([path.join(dir, 'nope.yaml')], async () => '')).rejects.toThrow(
      'no such file',
    );
    await expect(loadManifests(['-', '-'], async () => svc('s'))).rejects.toThrow('only once');
  });

  test('an empty directory is an input error', async () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'meshctl-empty-'));
    try {
      await expect(loadManifests([empty], async () => '')).rejects.toThrow(/no \.yaml, \.yml, \.json files/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

describe('withNamespace', () => {
  test('fills in missing namespaces and refuses a different one', () => {
    const docs = [
      { value: { kind: 'Service', name: 'a' }, source: 'x:1' },
      { value: { kind: 'Service', name: 'b', namespace: 'prod' }, source: 'x:5' },
    ];
    expect(withNamespace(docs.slice(0, 1), 'prod')[0]!.value.namespace).toBe('prod');
    expect(withNamespace(docs, 'prod')[1]!.value.namespace).toBe('prod');
    expect(() => withNamespace(docs, 'dev')).toThrow(/namespace "prod" but -n says "dev"/);
    expect(withNamespace(docs, undefined)).toBe(docs);
  });
});
