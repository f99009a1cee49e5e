import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readMaps } from './backend';
import { Backoff } from './backoff';
import { codecs, fromByteString, toHex } from './codec';
import { compile } from './compile';
import { IncrementalCompiler } from './incremental';
import { diffMapSets } from './maps';
import { MemoryMapBackend } from './memory-backend';
import { type ApplyOutcome, Reconciler } from './reconciler';
import { service, stateOf, workload } from './test-fixtures';

const state1 = stateOf([
  service('web', '127.100.0.1'),
  workload('web-1', '127.0.1.1', 'n1'),
  workload('web-2', '127.0.1.2', 'n2'),
]);
const state2 = stateOf([workload('web-3', '127.0.1.3', 'n2'), service('api', '127.100.0.2')], state1);

async function setup(file?: string) {
  const backend = await MemoryMapBackend.open(file ? { file } : {});
  const outcomes: ApplyOutcome[] = [];
  const rec = new Reconciler(backend, {
    node: 'n1',
    cluster: 'c1',
    backoff: { initialMs: 5, maxMs: 20, jitter: 0 },
    onOutcome: (o) => outcomes.push(o),
  });
  await rec.load();
  return { backend, rec, outcomes };
}

describe('Reconciler', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-rec-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('applies, checkpoints revision and digest with the maps, and writes nothing the second time', async () => {
    const { backend, rec } = await setup();
    const desired = compile(state1, 'n1', { ids: await rec.allocator() });
    const first = await rec.submit(desired);
    expect(first).toMatchObject({ ok: true, revision: 1, ops: 7, batches: 5 });
    expect(await backend.readMeta()).toMatchObject({
      appliedRevision: 1,
      node: 'n1',
      cluster: 'c1',
      layoutVersion: 1,
    });
    expect(diffMapSets(await readMaps(backend), desired.maps)).toEqual([]);
    const writes = backend.writes;
    expect(await rec.submit(compile(state1, 'n1', { ids: await rec.allocator() }))).toMatchObject({
      ok: true,
      ops: 0,
    });
    expect(backend.writes).toBe(writes);
  });

  it('a failed apply reports the error, keeps the checkpoint, and retries with backoff until it succeeds', async () => {
    const { backend, rec, outcomes } = await setup();
    await rec.submit(compile(state1, 'n1', { ids: await rec.allocator() }));
    backend.injectFault({ map: 'mesh_services', code: 'EIO' });
    const desired = compile(state2, 'n1', { ids: await rec.allocator() });
    const failed = await rec.submit(desired);
    expect(failed).toMatchObject({ ok: false, revision: 2, retryInMs: 5 });
    expect(failed.error).toMatch(/update mesh_services: EIO/);
    expect((await backend.readMeta())!.appliedRevision).toBe(1);
    const status = rec.objectStatus();
    expect(status.filter((s) => s.state === 'error').map((s) => s.map)).toEqual([
      'mesh_services',
      'mesh_services',
    ]);
    // What would have run after the failed batch is still pending: the old table's deletion.
    expect(status.filter((s) => s.state === 'pending').map((s) => s.map)).toEqual([
      'mesh_slots',
      'mesh_slots',
    ]);

    await new Promise((r) => setTimeout(r, 30));
    expect(outcomes.filter((o) => !o.ok).length).toBeGreaterThanOrEqual(3);
    expect(outcomes.filter((o) => !o.ok).map((o) => o.retryInMs)).toEqual(
      expect.arrayContaining([5, 10, 20]),
    );
    backend.clearFaults();
    await new Promise((r) => setTimeout(r, 40));
    expect(outcomes.at(-1)).toMatchObject({ ok: true, revision: 2 });
    expect((await backend.readMeta())!.appliedRevision).toBe(2);
    expect(diffMapSets(await readMaps(backend), desired.maps)).toEqual([]);
    expect(rec.objectStatus()).toEqual([]);
    rec.stop();
  });

  it('re-reads the maps after a half-applied batch, and new ids avoid what it wrote', async () => {
    const { backend, rec } = await setup();
    backend.injectFault({ map: 'mesh_backends', count: 1, after: 1 });
    const desired = compile(state2, 'n1', { ids: await rec.allocator() });
    expect(await rec.apply(desired)).toMatchObject({ ok: false, ops: 1 }); // the id name batch went through
    // The next compile starts from what the maps hold (one backend already written).
    const ids = await rec.allocator();
    const again = compile(state2, 'n1', { ids });
    expect(again.ids.backends).toEqual(desired.ids.backends);
    expect(await rec.apply(again)).toMatchObject({ ok: true });
    expect(diffMapSets(await readMaps(backend), again.maps)).toEqual([]);
  });

  it('a full pass reads everything back and repairs drift (counted)', async () => {
    const { backend, rec } = await setup();
    const desired = compile(state1, 'n1', { ids: await rec.allocator() });
    await rec.submit(desired);
    // Drift, as bpftool would cause: one slot deleted, one backend rewritten, one stray entry.
    const [slotKey] = [...desired.maps.mesh_slots.keys()];
    await backend.delete('mesh_slots', [fromByteString(slotKey!)]);
    const [beKey] = [...desired.maps.mesh_backends.keys()];
    await backend.update('mesh_backends', [
      [fromByteString(beKey!), codecs.backendValue.encode({ addr: 0x7f0001ff, port: 1, proto: 6, flags: 0 })],
      [
        codecs.backendKey.encode({ backend_id: 999 }),
        codecs.backendValue.encode({ addr: 0x7f0001fe, port: 1, proto: 6, flags: 0 }),
      ],
    ]);
    const pass = await rec.fullPass();
    expect(pass).toMatchObject({ ok: true, kind: 'full-pass', ops: 3 });
    expect(rec.stats.repairs).toBe(3);
    expect(diffMapSets(await readMaps(backend), desired.maps)).toEqual([]);
    expect(await rec.fullPass()).toMatchObject({ ok: true, ops: 0 });
    expect(rec.stats.repairs).toBe(3);
  });

  it('after a restart it adopts the persisted maps and ids: zero writes when nothing changed', async () => {
    const file = path.join(dir, 'maps.json');
    const first = await setup(file);
    await first.rec.submit(compile(state2, 'n1', { ids: await first.rec.allocator() }));
    const restarted = await setup(file);
    expect(restarted.rec.meta).toMatchObject({ appliedRevision: 2 });
    const again = compile(state2, 'n1', { ids: await restarted.rec.allocator() });
    expect(await restarted.rec.submit(again)).toMatchObject({ ok: true, ops: 0 });
    expect(restarted.backend.writes).toBe(0);
  });

  it('incremental rounds diff only the touched keys, and fall back to a full diff after a failure', async () => {
    const { backend, rec } = await setup();
    const inc = new IncrementalCompiler('n1');
    await rec.submit(inc.reset(state1, await rec.allocator()).desired);
    // A failed round leaves web-3's backend half written...
    backend.injectFault({ map: 'mesh_slots', count: 1 });
    const s2 = stateOf([workload('web-3', '127.0.1.3', 'n2')], state1);
    const r2 = inc.update(s2, ['Workload/default/web-3']);
    expect(await rec.submit(r2.desired, { touched: r2.touched })).toMatchObject({ ok: false });
    // ...and the next round, though it only touches api, re-reads and finishes web-3 too.
    const s3 = stateOf([service('api', '127.100.0.2')], s2);
    const r3 = inc.update(s3, ['Service/default/api']);
    expect(await rec.submit(r3.desired, { touched: r3.touched })).toMatchObject({ ok: true, revision: 3 });
    expect(diffMapSets(await readMaps(backend), r3.desired.maps)).toEqual([]);
    expect((await backend.readMeta())!.mapsDigest).toBe(r3.desired.digest);
    rec.stop();
  });

  it('a clean incremental round reads nothing back; full rounds and rounds after a failure do', async () => {
    const { backend, rec } = await setup();
    const reads = jest.spyOn(backend, 'readStrings');
    const inc = new IncrementalCompiler('n1');
    await rec.submit(inc.reset(state1, await rec.allocator()).desired);
    reads.mockClear();
    const s2 = stateOf([workload('web-3', '127.0.1.3', 'n2')], state1);
    const r2 = inc.update(s2, ['Workload/default/web-3']);
    // web-3's backend, web's new 3-slot table, its service entry, its old 2-slot table.
    expect(await rec.submit(r2.desired, { touched: r2.touched })).toMatchObject({ ok: true, ops: 7 });
    expect(reads).not.toHaveBeenCalled();
    expect(diffMapSets(await readMaps(backend), r2.desired.maps)).toEqual([]);
    // A full round (no touched keys) diffs against the maps as they are, read back.
    expect(await rec.submit(r2.desired)).toMatchObject({ ok: true, ops: 0 });
    expect(reads).toHaveBeenCalled();
    // So does a full pass, which finds and repairs an entry deleted behind the reconciler's back.
    const [slot] = r2.desired.maps.mesh_slots.keys();
    await backend.delete('mesh_slots', [fromByteString(slot!)]);
    expect(await rec.fullPass()).toMatchObject({ ok: true, ops: 1 });
    expect(diffMapSets(await readMaps(backend), r2.desired.maps)).toEqual([]);
    expect(await rec.actual()).toEqual(await readMaps(backend));
    // A copy read for ids (allocator) is not what the maps hold after the next round writes.
    await rec.allocator();
    const s3 = stateOf([workload('web-4', '127.0.1.4', 'n2')], s2);
    const r3 = inc.update(s3, ['Workload/default/web-4']);
    // web-4's backend, a 4-slot table, the service entry, the 3-slot table it replaces.
    expect(await rec.submit(r3.desired, { touched: r3.touched })).toMatchObject({ ok: true, ops: 9 });
    expect(diffMapSets(await rec.actual(), r3.desired.maps)).toEqual([]);
    rec.stop();
  });

  it('refuses maps of another layout version', async () => {
    const backend = await MemoryMapBackend.open();
    await backend.writeMeta({
      layoutVersion: 99,
      appliedRevision: 1,
      appliedAtMs: 0,
      mapsDigest: 0n,
      node: 'n1',
      cluster: 'c1',
    });
    await expect(new Reconciler(backend, { node: 'n1', cluster: 'c1' }).load()).rejects.toThrow(
      /layout version 99/,
    );
  });

  it('adopts maps whose meta holds a digest of another encoding: writes nothing but a new meta', async () => {
    const first = await setup();
    const desired = compile(state1, 'n1', { ids: await first.rec.allocator() });
    expect((await first.rec.submit(desired)).ok).toBe(true);
    // What an agent from before byte-string map sets left: same maps, a digest over their hex.
    const meta = (await first.backend.readMeta())!;
    await first.backend.writeMeta({ ...meta, mapsDigest: meta.mapsDigest ^ 0xdeadbeefn });
    const rec = new Reconciler(first.backend, { node: 'n1', cluster: 'c1' });
    expect((await rec.load())?.appliedRevision).toBe(meta.appliedRevision);
    const writes = first.backend.writes;
    const again = await rec.apply(compile(state1, 'n1', { ids: await rec.allocator() }));
    expect(again).toMatchObject({ ok: true, ops: 0, batches: 0 });
    expect(first.backend.writes).toBe(writes + 1);
    expect((await first.backend.readMeta())!.mapsDigest).toBe(meta.mapsDigest);
  });

  it('keys in status are the hex keys of the map entries', async () => {
    const { backend, rec } = await setup();
    backend.injectFault({ map: 'mesh_backends', count: 1 });
    await rec.apply(compile(state1, 'n1', { ids: await rec.allocator() }));
    const key = toHex(codecs.backendKey.encode({ backend_id: 1 }));
    expect(key).toBe('01000000');
    const status = rec.objectStatus();
    expect(status).toEqual(
      expect.arrayContaining([expect.objectContaining({ map: 'mesh_backends', key, state: 'error' })]),
    );
    // Pending entries of later batches are shown as hex too.
    expect(status.filter((s) => s.state === 'pending').length).toBeGreaterThan(0);
    for (const s of status) expect(s.key).toMatch(/^([0-9a-f]{2})+$/);
  });
});

describe('Backoff', () => {
  it('doubles from 100 ms to a 1 min cap and resets', () => {
    const b = new Backoff({ jitter: 0 });
    const seq = Array.from({ length: 12 }, () => b.next());
    expect(seq).toEqual([100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000]);
    b.reset();
    expect(b.next()).toBe(100);
  });

  it('spreads retries with jitter within bounds', () => {
    const b = new Backoff({ jitter: 0.2, random: () => 1 });
    expect(b.next()).toBe(120);
  });
});
