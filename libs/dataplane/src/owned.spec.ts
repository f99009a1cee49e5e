import fc from 'fast-check';
import {
  BackendRefs,
  destOfKey,
  emptyOwnedParts,
  forEachOwned,
  heldDestId,
  type OwnedParts,
  packOwned,
  reuseKeys,
  unpackOwned,
} from './owned';

describe('Owned records', () => {
  it('property: pack then unpack gives back every part', () => {
    const keys = fc.array(fc.string(), { maxLength: 6 });
    fc.assert(
      fc.property(
        fc.array(fc.string(), { maxLength: 3 }),
        keys,
        keys,
        keys,
        (frontends, slots, policy, dests) => {
          const destIds = dests.map((_, i) => 100 + i);
          const parts = {
            frontends,
            services: frontends.map((f) => `svc:${f}`),
            slots,
            policy,
            dests,
            destIds,
          };
          const packed = packOwned(parts);
          expect(packed).toHaveLength(
            4 + 2 * frontends.length + slots.length + policy.length + 2 * dests.length,
          );
          expect(unpackOwned(packed)).toEqual(parts);
          const visited = emptyOwnedParts();
          forEachOwned(packed, (part, key) => visited[part].push(key));
          expect(visited).toEqual({ ...parts, destIds: [] });
          // Each destination's id, the first one where a key repeats; none for a key not held
          // (not even one of another part).
          for (const d of dests) expect(heldDestId(packed, d)).toBe(100 + dests.indexOf(d));
          for (const k of [...frontends, ...slots, ...policy, 'not held'])
            if (!dests.includes(k)) expect(heldDestId(packed, k)).toBeUndefined();
        },
      ),
    );
  });

  it('property: reusing an older record keeps every key as it was (small records scanned, large indexed)', () => {
    // String identity is not observable from JS; what the heap gains, the apply bench measures.
    const keys = fc.array(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'), { maxLength: 40 });
    fc.assert(
      fc.property(keys, keys, keys, (frontends, slots, dests) => {
        const make = (): OwnedParts => ({
          frontends: [...frontends],
          services: frontends.map((f) => `svc:${f}`),
          slots: [...slots],
          policy: [],
          dests: [...dests],
          destIds: dests.map((_, i) => i + 1),
        });
        const old = packOwned({
          ...make(),
          slots: [...slots].reverse(),
          dests: ['z', ...dests],
          destIds: [9, ...dests.map((_, i) => i + 1)],
        });
        expect(reuseKeys(make(), old)).toEqual(make());
        expect(reuseKeys(make(), undefined)).toEqual(make());
      }),
    );
  });

  it('needs one mesh_services key per frontend and one backend id per destination', () => {
    const parts = { ...emptyOwnedParts(), frontends: ['a', 'b'], services: ['x'] };
    expect(() => packOwned(parts)).toThrow('one mesh_services key per frontend');
    expect(() => packOwned({ ...emptyOwnedParts(), dests: ['d'] })).toThrow('one backend id per destination');
  });
});

describe('destOfKey', () => {
  it('reads address, port and protocol back from a destination key', () => {
    expect(destOfKey('127.0.1.5:9080/TCP', 1)).toMatchObject({
      addr: 0x7f000105,
      port: 9080,
      proto: 6,
      flags: 1,
    });
    expect(destOfKey('127.0.2.1:53/UDP', 0)).toMatchObject({
      addr: 0x7f000201,
      port: 53,
      proto: 17,
      flags: 0,
    });
  });
});

describe('BackendRefs', () => {
  it('counts users, and finds destinations by address until dropped', () => {
    const refs = new BackendRefs();
    const addr = 0x7f000105;
    expect(refs.acquire('127.0.1.5:80/TCP', addr)).toBe(true);
    expect(refs.acquire('127.0.1.5:80/TCP', addr)).toBe(false);
    expect(refs.acquire('127.0.1.5:53/UDP', addr)).toBe(true);
    expect([...refs.at(addr)].sort()).toEqual(['127.0.1.5:53/UDP', '127.0.1.5:80/TCP']);
    expect(refs.release('127.0.1.5:80/TCP')).toBe(false);
    expect(refs.release('127.0.1.5:80/TCP')).toBe(true);
    // Unused but not dropped: a redo in the same update may acquire it again.
    expect(refs.has('127.0.1.5:80/TCP')).toBe(true);
    expect(refs.inUse('127.0.1.5:80/TCP')).toBe(false);
    refs.drop('127.0.1.5:80/TCP', addr);
    expect(refs.has('127.0.1.5:80/TCP')).toBe(false);
    expect([...refs.at(addr)]).toEqual(['127.0.1.5:53/UDP']);
    refs.clear();
    expect([...refs.at(addr)]).toEqual([]);
  });
});
