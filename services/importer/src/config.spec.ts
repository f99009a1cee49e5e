import { ConfigError } from '@meshplane/config';
import {
  DEFAULT_CACHE_TTL_MS,
  loadImporterConfig,
  parseDuration,
  parsePeerList,
  parsePeersFile,
} from './config';

const base = { MESH_CLUSTER: 'west' };
const problems = (fn: () => unknown): string[] => {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
};

describe('importer config', () => {
  test('peers from the environment, with optional JetStream domains, and defaults', () => {
    const c = loadImporterConfig({ ...base, MESH_FEDERATION_PEERS: 'east, north=north-js' });
    expect(c.peers).toEqual([
      { name: 'east', domain: 'east' },
      { name: 'north', domain: 'north-js' },
    ]);
    expect(c.cacheTtlMs).toBe(DEFAULT_CACHE_TTL_MS);
    expect(c.probeMs).toBe(1000);
  });

  test('peers from a YAML file; the environment TTL wins over the file', () => {
    const file = 'cluster: west\ncacheTTL: 45s\npeers:\n  - name: east\n  - name: north\n    domain: n1\n';
    const read = (p: string) => {
      expect(p).toBe('/etc/mesh/peers.yaml');
      return file;
    };
    const c = loadImporterConfig({ ...base, MESH_FEDERATION_FILE: '/etc/mesh/peers.yaml' }, read);
    expect(c.peers.map((p) => `${p.name}@${p.domain}`)).toEqual(['east@east', 'north@n1']);
    expect(c.cacheTtlMs).toBe(45_000);
    const o = loadImporterConfig(
      { ...base, MESH_FEDERATION_FILE: '/etc/mesh/peers.yaml', MESH_FEDERATION_CACHE_TTL: '500ms' },
      read,
    );
    expect(o.cacheTtlMs).toBe(500);
  });

  test('a bad peers file is refused with the file and the field path', () => {
    const load = (text: string) => () =>
      loadImporterConfig({ ...base, MESH_FEDERATION_FILE: 'peers.yaml' }, () => text);
    expect(problems(load('peers:\n  - name: east\n  - name: North_1\n'))).toEqual([
      'MESH_FEDERATION_FILE peers.yaml: peers.1.name: must be a DNS-1123 label (the peer cluster name)',
    ]);
    expect(problems(load('peers:\n  - name: east\n    port: 4222\n'))[0]).toMatch(
      /^MESH_FEDERATION_FILE peers\.yaml: peers\.0: Unrecognized key.*port/,
    );
    expect(problems(load('peers: [east'))[0]).toMatch(/^MESH_FEDERATION_FILE peers\.yaml: not valid YAML/);
    expect(problems(load('cluster: east\npeers: []\n'))[0]).toMatch(
      /cluster: the file is for cluster "east"/,
    );
    expect(problems(load('peers:\n  - name: east\ncacheTTL: soon\n'))).toEqual([
      'MESH_FEDERATION_FILE peers.yaml: cacheTTL: must be a duration such as 30s or 5m (at least 100ms)',
    ]);
    expect(problems(load('peers:\n  - name: east\n  - name: east\n'))).toEqual([
      'MESH_FEDERATION_FILE peers.yaml: peers[1].name: peer east is listed twice',
    ]);
    expect(problems(load('peers:\n  - name: west\n'))[0]).toMatch(/peers\[0\]\.name: west is this cluster/);
    expect(problems(load('peers: []\n'))[0]).toMatch(/no peers configured/);
    expect(
      problems(() =>
        loadImporterConfig({ ...base, MESH_FEDERATION_FILE: 'missing.yaml' }, () => {
          throw new Error('ENOENT: no such file or directory');
        }),
      ),
    ).toEqual(['MESH_FEDERATION_FILE missing.yaml: ENOENT: no such file or directory']);
  });

  test('peers live in one place, and some place', () => {
    expect(problems(() => loadImporterConfig(base))[0]).toMatch(/one of them must name the peers/);
    const both = { ...base, MESH_FEDERATION_PEERS: 'east', MESH_FEDERATION_FILE: 'f' };
    expect(problems(() => loadImporterConfig(both))[0]).toMatch(/set only one/);
  });

  test('bad environment values name the variable', () => {
    expect(problems(() => parsePeerList('east,a.b'))).toEqual([
      'MESH_FEDERATION_PEERS[1].name: "a.b" must be a DNS-1123 label (the peer cluster name)',
    ]);
    expect(problems(() => parsePeerList('east=x=y'))[0]).toMatch(
      /^MESH_FEDERATION_PEERS\[0\]\.name: .*<name>=<domain>/,
    );
    expect(problems(() => parsePeerList('east=a.b'))[0]).toMatch(/^MESH_FEDERATION_PEERS\[0\]\.domain:/);
    expect(
      problems(() =>
        loadImporterConfig({ ...base, MESH_FEDERATION_PEERS: 'east', MESH_FEDERATION_CACHE_TTL: '10 min' }),
      ),
    ).toEqual(['MESH_FEDERATION_CACHE_TTL must be a duration such as 500ms, 30s or 5m (at least 100ms)']);
  });

  test('durations as Cilium writes them', () => {
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('12')).toBe(12_000);
    expect(parseDuration('1.5s')).toBeUndefined();
  });

  test('parsePeersFile accepts an empty cluster field', () => {
    expect(parsePeersFile('peers:\n  - name: east\n', 'f', 'west')).toEqual({
      peers: [{ name: 'east', domain: 'east' }],
    });
  });
});
