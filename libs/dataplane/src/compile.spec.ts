import { applyChanges, emptyState } from '@meshplane/domain';
import { codecs, ipv4ToU32 } from './codec';
import { type CompiledMaps, compile, fakeCgroupId } from './compile';
import { IdAllocator } from './ids';
import { ACTION_ALLOW, ACTION_DENY, BE_F_LOCAL, SVC_F_ALLOW, SVC_F_DENY } from './layout';
import { describeMapSet, halfAppliedServices } from './maps';
import { policy, remove, route, service, stateOf, workload } from './test-fixtures';

/** Frontend `vip:port/proto` -> {flags, backends as `addr:port` repeated by slot count}. */
function view(c: CompiledMaps) {
  const backends = new Map<number, string>();
  for (const [k, v] of c.maps.mesh_backends) {
    const b = codecs.backendValue.decodeStr(v);
    const ip = [b.addr >>> 24, (b.addr >>> 16) & 255, (b.addr >>> 8) & 255, b.addr & 255].join('.');
    backends.set(
      codecs.backendKey.decodeStr(k).backend_id,
      `${ip}:${b.port}${b.flags & BE_F_LOCAL ? '*' : ''}`,
    );
  }
  const out: Record<string, { id: number; flags: number; slots: string[] }> = {};
  for (const [k, v] of c.maps.mesh_services) {
    const key = codecs.serviceKey.decodeStr(k);
    const s = codecs.serviceValue.decodeStr(v);
    const slots: string[] = [];
    for (let slot = 0; slot < s.slot_count; slot++) {
      const sv = c.maps.mesh_slots.get(
        codecs.slotKey.encodeStr({ service_id: s.service_id, generation: s.generation, slot }),
      );
      slots.push(backends.get(codecs.slotValue.decodeStr(sv!).backend_id)!);
    }
    out[`${key.vip === ipv4ToU32('127.100.0.1') ? 'vip1' : key.vip.toString(16)}:${key.port}/${key.proto}`] =
      {
        id: s.service_id,
        flags: s.flags,
        slots: slots.sort(),
      };
  }
  return out;
}

const base = [
  service('web', '127.100.0.1', { ports: [{ port: 80, protocol: 'TCP', targetPort: 8080 }] }),
  workload('web-1', '127.0.1.1', 'n1'),
  workload('web-2', '127.0.1.2', 'n2'),
  workload('client-1', '127.0.1.9', 'n1', { labels: { app: 'client' }, identity: 'client' }),
];

describe('compile', () => {
  it('every Service is a frontend; its backends are matching workloads on every node', () => {
    const c = compile(stateOf(base), 'n1');
    expect(view(c)).toEqual({
      'vip1:80/6': { id: 1, flags: 0, slots: ['127.0.1.1:8080*', '127.0.1.2:8080'] },
    });
    expect(c.stats).toMatchObject({
      frontends: 1,
      backends: 2,
      slots: 2,
      identities: 2,
      policies: 0,
      skipped: [],
    });
    expect(halfAppliedServices(c.maps)).toEqual([]);
  });

  it('each port is its own frontend, with targetPort backends per port and protocol', () => {
    const c = compile(
      stateOf([
        service('dns', '127.100.0.1', {
          ports: [
            { port: 53, protocol: 'UDP', targetPort: 5353 },
            { port: 53, protocol: 'TCP' },
          ],
        }),
        workload('dns-1', '127.0.1.3', 'n2'),
      ]),
      'n1',
    );
    const v = view(c);
    expect(v['vip1:53/17']!.slots).toEqual(['127.0.1.3:5353']);
    expect(v['vip1:53/6']!.slots).toEqual(['127.0.1.3:53']);
    expect(v['vip1:53/17']!.id).not.toBe(v['vip1:53/6']!.id);
  });

  it('a Route splits by subset weight, shared by workload weight: 90/10 over 2+1 -> 9,9,2 slots', () => {
    const c = compile(
      stateOf([
        ...base,
        workload('web-3', '127.0.1.3', 'n2', { labels: { app: 'web', track: 'canary' } }),
        route('web', 'web', [
          { selector: { app: 'web' }, weight: 0 },
          { selector: { track: 'canary' }, weight: 10 },
        ]),
        route('web-z', 'web', [{ selector: { app: 'nope' }, weight: 1 }]),
      ]),
      'n1',
    );
    expect(view(c)['vip1:80/6']!.slots).toEqual(['127.0.1.3:8080']);

    const split = compile(
      stateOf([
        ...base,
        workload('web-3', '127.0.1.3', 'n2', { labels: { app: 'web', track: 'canary' } }),
        workload('web-4', '127.0.1.4', 'n2', { labels: { app: 'web', track: 'stable' }, weight: 3 }),
        route('web', 'web', [
          { selector: { track: 'stable' }, weight: 90 },
          { selector: { track: 'canary' }, weight: 10 },
          { selector: { track: 'empty' }, weight: 50 },
        ]),
      ]),
      'n1',
    );
    // stable = web-4 only (90), canary = web-3 (10); the empty subset drops out.
    const slots = view(split)['vip1:80/6']!.slots;
    expect(slots.filter((s) => s.startsWith('127.0.1.4')).length).toBe(9);
    expect(slots.filter((s) => s.startsWith('127.0.1.3')).length).toBe(1);
  });

  it('workload weights without a Route', () => {
    const c = compile(stateOf([...base, workload('web-3', '127.0.1.3', 'n2', { weight: 2 })]), 'n1');
    expect(view(c)['vip1:80/6']!.slots).toEqual([
      '127.0.1.1:8080*',
      '127.0.1.2:8080',
      '127.0.1.3:8080',
      '127.0.1.3:8080',
    ]);
  });

  it('a Service with no workloads has zero slots (the program refuses it)', () => {
    const c = compile(stateOf([service('empty', '127.100.0.1')]), 'n1');
    expect(view(c)['vip1:80/6']).toEqual({ id: 1, flags: 0, slots: [] });
    expect(c.maps.mesh_slots.size).toBe(0);
  });

  it('policies: flags per frontend, verdicts only for local identities, DENY wins, ports filter', () => {
    const c = compile(
      stateOf([
        service('web', '127.100.0.1', {
          ports: [
            { port: 80, protocol: 'TCP' },
            { port: 443, protocol: 'TCP' },
          ],
        }),
        workload('web-1', '127.0.1.1', 'n2'),
        workload('client-1', '127.0.1.9', 'n1', { labels: { app: 'client' }, identity: 'client' }),
        workload('admin-1', '127.0.1.8', 'n1', { labels: { app: 'admin' }, identity: 'admin' }),
        policy('allow', 'web', 'ALLOW', ['client', 'admin', 'remote-only']),
        policy('deny', 'web', 'DENY', ['admin'], { ports: [443] }),
      ]),
      'n1',
    );
    const v = view(c);
    expect(v['vip1:80/6']!.flags).toBe(SVC_F_ALLOW);
    expect(v['vip1:443/6']!.flags).toBe(SVC_F_ALLOW | SVC_F_DENY);
    const names = new Map([...c.ids.identities].map(([n, id]) => [id, n]));
    const verdicts = [...c.maps.mesh_policy].map(([k, val]) => {
      const key = codecs.policyKey.decodeStr(k);
      const port = key.service_id === v['vip1:80/6']!.id ? 80 : 443;
      return `${port} ${names.get(key.identity_id)} ${codecs.policyValue.decodeStr(val).action}`;
    });
    expect(verdicts.sort()).toEqual(
      [
        `443 admin ${ACTION_DENY}`,
        `443 client ${ACTION_ALLOW}`,
        `80 admin ${ACTION_ALLOW}`,
        `80 client ${ACTION_ALLOW}`,
      ].sort(),
    );
    expect([...c.ids.identities.keys()].sort()).toEqual(['admin', 'client']);
  });

  it('identities: local workloads only, through cgroupIdOf (fake ids are for the memory backend)', () => {
    const c = compile(stateOf(base), 'n1');
    const cgroups = [...c.maps.mesh_identities.keys()].map((k) => codecs.identityKey.decodeStr(k).cgroup_id);
    expect(cgroups.sort()).toEqual(
      [
        fakeCgroupId({ namespace: 'default', name: 'client-1' }),
        fakeCgroupId({ namespace: 'default', name: 'web-1' }),
      ].sort(),
    );
    expect(cgroups.every((id) => id >= 1n << 63n)).toBe(true);
    const real = compile(stateOf(base), 'n1', {
      cgroupIdOf: (w) => (w.name === 'web-1' ? 4242n : undefined),
    });
    expect(
      [...real.maps.mesh_identities.keys()].map((k) => codecs.identityKey.decodeStr(k).cgroup_id),
    ).toEqual([4242n]);
    expect(describeMapSet(real.maps).mesh_id_names).toHaveLength(2);
  });

  it('is deterministic whatever order the state was built in', () => {
    const forward = stateOf(base);
    const backward = applyChanges(emptyState(), [...base].reverse(), 1);
    expect(describeMapSet(compile(backward, 'n1').maps)).toEqual(describeMapSet(compile(forward, 'n1').maps));
  });

  it('ids are stable: unchanged objects keep theirs, new ones take unused ids, freed ids wait a round', () => {
    const a = compile(stateOf(base), 'n1');
    // A new service that sorts first, and a removed backend.
    const next = stateOf(
      [service('aaa', '127.100.0.2'), workload('aaa-1', '127.0.1.5', 'n2'), remove('Workload', 'web-2')],
      stateOf(base),
    );
    for (const ids of [IdAllocator.fromAssignments(a.ids), IdAllocator.fromMaps(a.maps)]) {
      const b = compile(next, 'n1', { ids });
      expect(b.ids.services.get('127.100.0.1:80/TCP')).toBe(a.ids.services.get('127.100.0.1:80/TCP'));
      expect(b.ids.backends.get('127.0.1.1:8080/TCP')).toBe(a.ids.backends.get('127.0.1.1:8080/TCP'));
      expect(b.ids.identities).toEqual(a.ids.identities);
      expect(b.ids.services.get('127.100.0.2:80/TCP')).toBe(2);
      // web-2's backend id (2) is still in the maps: the new backend must not take it yet.
      expect(b.ids.backends.get('127.0.1.5:80/TCP')).toBe(3);
    }
  });

  it('skips a malformed spec instead of failing the whole node', () => {
    const state = stateOf(base);
    state.resources.set('Service/default/bad', {
      kind: 'Service',
      namespace: 'default',
      name: 'bad',
      spec: { vip: 7 },
      version: 1,
    });
    const c = compile(state, 'n1');
    expect(c.stats.skipped).toEqual(['Service/default/bad: malformed Service spec']);
    expect(c.stats.frontends).toBe(1);
  });
});
