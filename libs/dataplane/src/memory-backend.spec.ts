import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MapError, type Meta, readMaps } from './backend';
import { codecs, toByteString, toHex } from './codec';
import { LAYOUT_VERSION } from './layout';
import { MemoryMapBackend } from './memory-backend';

const bk = (id: number) => codecs.backendKey.encode({ backend_id: id });
const bv = (port: number) => codecs.backendValue.encode({ addr: 0x7f000101, port, proto: 6, flags: 0 });
const meta: Meta = {
  layoutVersion: 1,
  appliedRevision: 7,
  appliedAtMs: 1700000000000,
  mapsDigest: 99n,
  node: 'n1',
  cluster: 'c1',
};

/** Writes a memory backend file by hand: `maps` of hex keys to hex values. */
function writeMapsFile(file: string, layoutVersion: number, maps: Record<string, Record<string, string>>) {
  fs.writeFileSync(file, JSON.stringify({ format: 'meshplane-memory-maps', layoutVersion, maps }));
}

async function entries(b: MemoryMapBackend, map: 'mesh_backends') {
  const out: number[] = [];
  for await (const [k] of b.iterate(map)) out.push(codecs.backendKey.decode(k).backend_id);
  return out.sort((x, y) => x - y);
}

describe('MemoryMapBackend (machines without BPF, many-node simulations)', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-mem-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('batch update, lookup, idempotent delete', async () => {
    const b = await MemoryMapBackend.open();
    await b.update('mesh_backends', [
      [bk(1), bv(80)],
      [bk(2), bv(81)],
    ]);
    expect(await b.lookup('mesh_backends', bk(2))).toEqual(bv(81));
    await b.delete('mesh_backends', [bk(2), bk(3)]);
    expect(await entries(b, 'mesh_backends')).toEqual([1]);
    expect(await b.lookup('mesh_backends', bk(2))).toBeUndefined();
  });

  it('rejects keys and values of the wrong size (EINVAL) and full maps (E2BIG) after a prefix', async () => {
    const b = await MemoryMapBackend.open({ maxEntries: { mesh_backends: 2 } });
    await expect(b.update('mesh_backends', [[new Uint8Array(3), bv(80)]])).rejects.toMatchObject({
      code: 'EINVAL',
      errno: 22,
    });
    const err = await b
      .update('mesh_backends', [
        [bk(1), bv(80)],
        [bk(2), bv(80)],
        [bk(3), bv(80)],
      ])
      .catch((e: MapError) => e);
    expect(err).toBeInstanceOf(MapError);
    expect(err).toMatchObject({ code: 'E2BIG', map: 'mesh_backends', op: 'update', done: 2 });
    // Updating an existing key of a full map is fine.
    await b.update('mesh_backends', [[bk(1), bv(90)]]);
    expect(await entries(b, 'mesh_backends')).toEqual([1, 2]);
  });

  it('injected faults: N failing writes with an errno, optionally after a partial batch', async () => {
    const b = await MemoryMapBackend.open();
    b.injectFault({ map: 'mesh_backends', code: 'ENOMEM', count: 2, after: 1 });
    for (let i = 0; i < 2; i++) {
      await expect(
        b.update('mesh_backends', [
          [bk(10 + i), bv(80)],
          [bk(20 + i), bv(80)],
        ]),
      ).rejects.toMatchObject({ code: 'ENOMEM', done: 1 });
    }
    await b.update('mesh_backends', [[bk(30), bv(80)]]);
    expect(await entries(b, 'mesh_backends')).toEqual([10, 11, 30]);
    b.injectFault({ map: 'mesh_backends' });
    await expect(b.delete('mesh_backends', [bk(30)])).rejects.toMatchObject({
      code: 'EIO',
      op: 'delete',
      done: 0,
    });
    await expect(b.update('mesh_slots', [])).resolves.toBeUndefined();
    b.clearFaults();
    await b.delete('mesh_backends', [bk(30)]);
  });

  it('meta lives in an ARRAY map: zero-filled until written, not deletable', async () => {
    const b = await MemoryMapBackend.open();
    expect(await b.readMeta()).toBeUndefined();
    await b.writeMeta(meta);
    expect(await b.readMeta()).toEqual(meta);
    await expect(b.delete('mesh_meta', [codecs.metaKey.encode({ index: 0 })])).rejects.toMatchObject({
      code: 'EINVAL',
    });
    await expect(
      b.update('mesh_meta', [[codecs.metaKey.encode({ index: 1 }), new Uint8Array(160)]]),
    ).rejects.toMatchObject({
      code: 'E2BIG',
    });
  });

  it('persists every write atomically, so a new process resumes from the file', async () => {
    const file = path.join(dir, 'n1', 'maps.json');
    const a = await MemoryMapBackend.open({ file });
    await a.update('mesh_backends', [[bk(1), bv(80)]]);
    await a.writeMeta(meta);
    // Simulate a crash: no close().
    const b = await MemoryMapBackend.open({ file });
    expect(await b.readMeta()).toEqual(meta);
    expect(await readMaps(b)).toEqual(await readMaps(a));
    expect(fs.readdirSync(path.dirname(file))).toEqual(['maps.json']);
    await a.close();
    await expect(a.lookup('mesh_backends', bk(1))).rejects.toMatchObject({ code: 'EBUSY' });
  });

  it('does not adopt a file of another layout version', async () => {
    const file = path.join(dir, 'old.json');
    writeMapsFile(file, 0, { mesh_backends: { '01000000': '00' } });
    const b = await MemoryMapBackend.open({ file });
    expect(b.size('mesh_backends')).toBe(0);
  });

  it('the byte-string paths: same entries as the byte paths, same checks', async () => {
    const b = await MemoryMapBackend.open({ maxEntries: { mesh_backends: 3 } });
    const s = (u: Uint8Array) => toByteString(u);
    // Synchronous, as the reconciler relies on (no promise to await per batch); errors are thrown.
    expect(b.updateStrings('mesh_backends', [s(bk(1)), s(bk(2))], [s(bv(80)), s(bv(81))])).toBeUndefined();
    expect(await b.lookup('mesh_backends', bk(2))).toEqual(bv(81));
    expect(await entries(b, 'mesh_backends')).toEqual([1, 2]);
    // Like a BPF hash map, no insertion order.
    expect([...(await b.readStrings('mesh_backends'))].sort()).toEqual([
      [s(bk(1)), s(bv(80))],
      [s(bk(2)), s(bv(81))],
    ]);
    // Wrong size, a char above 0xff, a full map: EINVAL / EINVAL / E2BIG after the prefix.
    await expect(async () =>
      b.updateStrings('mesh_backends', [s(bk(3)), '\0\0\0'], [s(bv(82)), s(bv(83))]),
    ).rejects.toMatchObject({ code: 'EINVAL', done: 1 });
    expect(await b.lookup('mesh_backends', bk(3))).toEqual(bv(82));
    await expect(async () =>
      b.updateStrings('mesh_backends', [s(bk(1)), '\u0104\0\0\0'], [s(bv(90)), s(bv(91))]),
    ).rejects.toMatchObject({
      code: 'EINVAL',
      done: 1,
      message: expect.stringContaining('not a byte string'),
    });
    // In a value too, and nothing of that entry is written; in a delete batch's key.
    await expect(async () =>
      b.updateStrings('mesh_backends', [s(bk(1)), s(bk(2))], [s(bv(92)), `\u0104${s(bv(93)).slice(1)}`]),
    ).rejects.toMatchObject({ code: 'EINVAL', done: 1, message: expect.stringContaining('entry 1') });
    expect(await b.lookup('mesh_backends', bk(1))).toEqual(bv(92));
    expect(await b.lookup('mesh_backends', bk(2))).toEqual(bv(81));
    await expect(async () =>
      b.deleteStrings('mesh_backends', [s(bk(2)), '\u0104\0\0\0']),
    ).rejects.toMatchObject({
      code: 'EINVAL',
      done: 1,
    });
    expect(await b.lookup('mesh_backends', bk(2))).toBeUndefined();
    b.updateStrings('mesh_backends', [s(bk(2))], [s(bv(81))]);
    await expect(async () => b.updateStrings('mesh_backends', [s(bk(4))], [s(bv(84))])).rejects.toMatchObject(
      {
        code: 'E2BIG',
        done: 0,
      },
    );
    await b.deleteStrings('mesh_backends', [s(bk(1)), s(bk(9))]);
    expect(await entries(b, 'mesh_backends')).toEqual([2, 3]);
    await expect(async () => b.deleteStrings('mesh_meta', ['\0\0\0\0'])).rejects.toMatchObject({
      code: 'EINVAL',
    });
    b.injectFault({ map: 'mesh_backends', count: 1, after: 1 });
    await expect(async () => b.deleteStrings('mesh_backends', [s(bk(2)), s(bk(3))])).rejects.toMatchObject({
      code: 'EIO',
      done: 1,
    });
    expect(await entries(b, 'mesh_backends')).toEqual([3]);
  });

  it('refuses a file whose entries are not of the map sizes, naming the map', async () => {
    const file = path.join(dir, 'bad.json');
    writeMapsFile(file, LAYOUT_VERSION, { mesh_backends: { '0100': toHex(bv(80)) } });
    await expect(MemoryMapBackend.open({ file })).rejects.toThrow(
      `${file}: mesh_backends: key of 2 bytes, expected 4`,
    );
  });

  it('reads files of hex entries (the format it writes) and keeps every byte value', async () => {
    const file = path.join(dir, 'hex.json');
    const key = Uint8Array.from([0xff, 0x80, 0x00, 0x7f]);
    const value = bv(0xfffe);
    writeMapsFile(file, LAYOUT_VERSION, { mesh_backends: { [toHex(key)]: toHex(value) } });
    const a = await MemoryMapBackend.open({ file });
    expect(await a.lookup('mesh_backends', key)).toEqual(value);
    await a.update('mesh_backends', [[bk(1), bv(80)]]);
    const written = JSON.parse(fs.readFileSync(file, 'utf8')) as {
      maps: Record<string, Record<string, string>>;
    };
    expect(written.maps.mesh_backends).toEqual({ [toHex(key)]: toHex(value), [toHex(bk(1))]: toHex(bv(80)) });
  });
});
