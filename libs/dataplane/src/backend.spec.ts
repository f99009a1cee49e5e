import fc from 'fast-check';
import { decodeMeta, encodeMeta, type Meta, MetaEncoder } from './backend';
import { toByteString } from './codec';

const metaArb: fc.Arbitrary<Meta> = fc.record({
  layoutVersion: fc.nat({ max: 0xffffffff }),
  appliedRevision: fc.maxSafeNat(),
  appliedAtMs: fc.maxSafeNat(),
  mapsDigest: fc.bigInt({ min: 0n, max: 0xffffffffffffffffn }),
  node: fc.constantFrom('n1', 'node-17', 'ü-node'),
  cluster: fc.constantFrom('local', 'bp-b71b823f-10k'),
});

describe('MetaEncoder (the checkpoint written after every apply)', () => {
  it('property: the same bytes as the codec, whichever names came before', () => {
    const enc = new MetaEncoder();
    fc.assert(
      fc.property(metaArb, (meta) => {
        const s = enc.encode(meta);
        expect(s).toBe(toByteString(encodeMeta(meta)));
        expect(decodeMeta(Uint8Array.from(s, (c) => c.charCodeAt(0)))).toEqual(meta);
      }),
    );
  });

  it('leaves what it does not check to the codec, with the codec errors', () => {
    const enc = new MetaEncoder();
    const ok: Meta = {
      layoutVersion: 1,
      appliedRevision: 1,
      appliedAtMs: 1,
      mapsDigest: 1n,
      node: 'n',
      cluster: 'c',
    };
    for (const bad of [
      { appliedRevision: -1 },
      { appliedAtMs: 1.5 },
      { mapsDigest: 1n << 64n },
      { layoutVersion: 2 ** 32 },
      { node: 'x'.repeat(64) },
    ]) {
      const meta = { ...ok, ...bad };
      expect(() => enc.encode(meta)).toThrow(RangeError);
      expect(() => encodeMeta(meta)).toThrow(RangeError);
    }
  });
});
