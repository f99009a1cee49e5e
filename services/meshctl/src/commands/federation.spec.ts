import { run } from '../cli';
import { captureIo, fakeServer } from '../testing/fake-io';
import {
  type FederationPeerItem,
  type FederationResponse,
  federationTable,
  skippedSection,
} from './federation';

const NOW = Date.parse('2026-11-25T12:00:00.000Z');

function peer(over: Partial<FederationPeerItem> = {}): FederationPeerItem {
  return {
    peer: 'east',
    state: 'connected',
    since: '2026-11-25T11:59:00.000Z',
    withdrawn: false,
    lastImportedRevision: 42,
    lastImportedSeq: 7,
    lastImportRevision: 19,
    peerSeq: 7,
    lag: 0,
    lastError: null,
    skipped: [],
    skippedCount: 0,
    updatedAt: '2026-11-25T11:59:59.000Z',
    stale: false,
    ...over,
  };
}

const clash = {
  kind: 'Service',
  namespace: 'default',
  name: 'web.east',
  reason: 'vip-conflict' as const,
  vip: '127.100.0.1:9080/TCP',
  holder: { kind: 'Service', namespace: 'default', name: 'legacy' },
  message:
    'Service default/web.east skipped: 127.100.0.1:9080/TCP is used by local Service default/legacy (only one global service may use a VIP)',
};

describe('federation status', () => {
  test('lists what each peer skipped below the table, nothing when nothing is skipped', () => {
    const r: FederationResponse = {
      cluster: 'west',
      peers: [peer({ skipped: [clash], skippedCount: 3 }), peer({ peer: 'north' })],
    };
    expect(federationTable(r, NOW).split('\n')[1]).toMatch(
      /^east\s+CONNECTED\s+1m ago\s+42\s+7\/7\s+0\s+19$/,
    );
    expect(skippedSection(r)).toBe(
      '\nSkipped from east (3; imported once the clash is gone):\n' +
        `  ${clash.message}\n` +
        '  ... and 2 more (see the import change set)\n',
    );
    // An API from before skips were reported has neither field.
    const { skipped: _s, skippedCount: _c, ...old } = peer();
    expect(skippedSection({ cluster: 'west', peers: [old as FederationPeerItem] })).toBe('');
  });

  test('meshctl federation status prints the table and the skipped resources', async () => {
    const server = fakeServer(() => ({
      status: 200,
      body: { cluster: 'west', peers: [peer({ skipped: [clash], skippedCount: 1 })] },
    }));
    const io = captureIo({ fetch: server.fetch });
    expect(await run(['federation', 'status'], io)).toBe(0);
    expect(server.requests.map((q) => q.url.pathname)).toEqual(['/v1/federation']);
    expect(io.stdout).toMatch(/^PEER\s+LINK/);
    expect(io.stdout).toContain(
      `Skipped from east (1; imported once the clash is gone):\n  ${clash.message}\n`,
    );
  });
});
