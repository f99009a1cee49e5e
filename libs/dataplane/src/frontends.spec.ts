import type { StoredResource } from '@meshplane/domain';
import fc from 'fast-check';
import { flatKey, pairKey, WorkloadIndex } from './frontends';

const wl = (
  name: string,
  labels: Record<string, string>,
  extra: Partial<StoredResource> = {},
): StoredResource => ({
  kind: 'Workload',
  namespace: 'default',
  name,
  version: 1,
  spec: { address: '127.0.1.1', node: 'n1', identity: name, labels, weight: 2 },
  ...extra,
});

const addressesOf = (index: WorkloadIndex, scope: string, selector: Record<string, unknown>) =>
  index.select(scope, selector).map((c) => c.address);

describe('WorkloadIndex', () => {
  it('selects by every selector pair, whatever bucket it scans', () => {
    const index = new WorkloadIndex();
    for (let i = 0; i < 20; i++)
      index.add(`Workload/default/w${i}`, {
        ...wl(`w${i}`, { app: i < 10 ? 'a' : 'b', version: `v${i % 2}` }),
        spec: {
          address: `127.0.1.${i + 1}`,
          node: 'n1',
          identity: 'x',
          labels: { app: i < 10 ? 'a' : 'b', version: `v${i % 2}` },
        },
      });
    expect(addressesOf(index, 'default', { app: 'a', version: 'v1' }).sort()).toEqual(
      ['127.0.1.2', '127.0.1.4', '127.0.1.6', '127.0.1.8', '127.0.1.10'].sort(),
    );
    expect(index.select('default', { app: 'a' })).toHaveLength(10);
    expect(index.select('default', { app: 'c' })).toEqual([]);
    expect(index.select('other', { app: 'a' })).toEqual([]);
    // An (invalid) empty selector: every workload of the scope.
    expect(index.select('default', {})).toHaveLength(20);
  });

  it('parses what a selector reads (default weight 1) and skips malformed specs', () => {
    const index = new WorkloadIndex();
    expect(index.add('Workload/default/a', wl('a', { app: 'x' }))).toBe(true);
    expect(
      index.add('Workload/default/b', { ...wl('b', { app: 'x' }), spec: { labels: { app: 'x' } } }),
    ).toBe(false);
    const c = wl('c', { app: 'x' });
    delete c.spec.weight;
    index.add('Workload/default/c', c);
    expect(index.get('Workload/default/b')).toBeUndefined();
    expect(
      index
        .select('default', { app: 'x' })
        .map((w) => w.weight)
        .sort(),
    ).toEqual([1, 2]);
  });

  it('replaces a re-added key and forgets a removed one', () => {
    const index = new WorkloadIndex();
    const first = wl('a', { app: 'x' });
    index.add('Workload/default/a', first);
    index.add('Workload/default/a', wl('a', { app: 'y' }));
    expect(index.select('default', { app: 'x' })).toEqual([]);
    expect(index.select('default', { app: 'y' })).toHaveLength(1);
    expect(index.remove('Workload/default/a')?.spec.labels).toEqual({ app: 'y' });
    expect(index.select('default', { app: 'y' })).toEqual([]);
    expect(index.remove('Workload/default/a')).toBeUndefined();
  });

  it('a new spec with the same labels replaces the entry; other labels, a malformed spec or a new scope move it', () => {
    const index = new WorkloadIndex();
    const key = 'Workload/default/a';
    index.add(key, wl('a', { app: 'x', v: '1' }));
    // Same labels, other weight and address: the selector sees the new spec.
    const heavier = wl('a', { v: '1', app: 'x' });
    heavier.spec = { ...heavier.spec, weight: 5, address: '127.0.1.7' };
    expect(index.add(key, heavier)).toBe(true);
    expect(index.get(key)).toBe(heavier);
    expect(index.select('default', { app: 'x' })).toEqual([
      { address: '127.0.1.7', labels: { v: '1', app: 'x' }, weight: 5 },
    ]);
    // A label less: the old pair no longer selects it.
    index.add(key, wl('a', { app: 'x' }));
    expect(index.select('default', { v: '1' })).toEqual([]);
    expect(index.select('default', { app: 'x' })).toHaveLength(1);
    // The same labels in another scope (an import) are another entry.
    index.add(key, wl('a', { app: 'x' }, { origin: 'east' }));
    expect(index.select('default', { app: 'x' })).toEqual([]);
    expect(index.select('default@east', { app: 'x' })).toHaveLength(1);
    // Malformed now: nothing is indexed under the key.
    expect(index.add(key, { ...wl('a', { app: 'x' }), spec: { labels: { app: 'x' } } })).toBe(false);
    expect(index.get(key)).toBeUndefined();
    expect(index.select('default@east', { app: 'x' })).toEqual([]);
  });

  it('indexes an import under its scope only', () => {
    const index = new WorkloadIndex();
    index.add('Workload/default/a.east', wl('a.east', { app: 'x' }, { origin: 'east' }));
    expect(index.select('default', { app: 'x' })).toEqual([]);
    expect(index.select('default@east', { app: 'x' })).toHaveLength(1);
    expect(index.select('default@east', {})).toHaveLength(1);
  });
});

describe('flat keys', () => {
  it('property: flatKey and pairKey spell what the template literals spell', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.nat(65535),
        fc.constantFrom('TCP', 'UDP'),
        fc.string(),
        (a, port, proto, v) => {
          expect(flatKey(a, port, proto)).toBe(`${a}:${port}/${proto}`);
          expect(pairKey(a, proto, v)).toBe(`${a}\0${proto}=${v}`);
        },
      ),
    );
  });
});
