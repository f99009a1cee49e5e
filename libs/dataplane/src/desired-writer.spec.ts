import { DesiredWriter } from './desired-writer';
import { digestMapSet, entryDigest } from './maps';

// Keys and values of the maps' sizes (8-byte service and slot keys, 12-byte service values,
// 4-byte slot and backend keys, 8-byte backend values), told apart by their first char.
const k8 = (c: string) => c.padEnd(8, '\0');
const v12 = (c: string) => c.padEnd(12, '\0');
const v4 = (c: string) => c.padEnd(4, '\0');

describe('DesiredWriter', () => {
  it('keeps the digest of the maps, and touches only keys whose value changed', () => {
    const w = new DesiredWriter('n1');
    let touched = w.begin();
    w.set('mesh_services', k8('a'), v12('1'));
    w.set('mesh_slots', k8('b'), v4('2'));
    let d = w.finish(1, []);
    expect(d.digest).toBe(digestMapSet(d.maps));
    expect([...(touched.mesh_services ?? []), ...(touched.mesh_slots ?? [])]).toEqual([k8('a'), k8('b')]);
    touched = w.begin();
    w.set('mesh_services', k8('a'), v12('1'));
    w.set('mesh_slots', k8('b'), v4('3'));
    d = w.finish(2, ['x']);
    expect([...(touched.mesh_services ?? [])]).toEqual([]);
    expect([...(touched.mesh_slots ?? [])]).toEqual([k8('b')]);
    expect(d.digest).toBe(digestMapSet(d.maps));
    expect(d.stats).toMatchObject({ frontends: 1, slots: 1, skipped: ['x'] });
    expect(d.revision).toBe(2);
  });

  it('deletes retired entries unless written again in the same update', () => {
    const w = new DesiredWriter('n1');
    w.begin();
    w.set('mesh_slots', k8('keep'), v4('v'));
    w.set('mesh_slots', k8('gone'), v4('v'));
    const touched = w.begin();
    w.retire('mesh_slots', k8('keep'));
    w.retire('mesh_slots', k8('gone'));
    w.set('mesh_slots', k8('keep'), v4('v'));
    w.dropRetired();
    const d = w.finish(2, []);
    expect([...d.maps.mesh_slots.keys()]).toEqual([k8('keep')]);
    expect([...(touched.mesh_slots ?? [])]).toEqual([k8('gone')]);
    expect(d.digest).toBe(digestMapSet(d.maps));
  });

  it('records nothing while tracking is off, and clear starts new maps', () => {
    const w = new DesiredWriter('n1');
    const before = w.desired;
    w.tracking = false;
    const touched = w.begin();
    w.set('mesh_backends', v4('k'), k8('v'));
    expect([...(touched.mesh_backends ?? [])]).toEqual([]);
    w.clear(5);
    expect(w.desired).not.toBe(before);
    expect(w.finish(5, []).digest).toBe(0n);
    expect(before.maps.mesh_backends.get(v4('k'))).toBe(k8('v'));
  });
});

describe('entryDigest', () => {
  it('is pinned: the digest in maps written by earlier agents still matches theirs', () => {
    expect(entryDigest('mesh_services', '\x7f\x64\x00\x01\x1f\x90\x06', '\x01\x02\xff')).toEqual([
      1573808594, 3184268828,
    ]);
    expect(entryDigest('mesh_id_names', '', '')).toEqual([940354920, 343317638]);
    expect(entryDigest('mesh_policy', 'k', 'v')).toEqual([20900216, 3541225290]);
  });
});
