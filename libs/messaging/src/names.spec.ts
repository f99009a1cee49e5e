import {
  assertClusterName,
  nodeStatusKey,
  revisionMsgId,
  revisionSubject,
  statusBucket,
  streamName,
} from './names';
import { revisionStreamConfig } from './stream';

describe('names', () => {
  it('derives the stream, subject and bucket of a cluster', () => {
    expect(streamName('local')).toBe('MESH_LOCAL');
    expect(revisionSubject('local')).toBe('mesh.local.revisions');
    expect(statusBucket('local')).toBe('mesh_status_local');
    expect(revisionMsgId('local', 42)).toBe('local:42');
  });

  it('upper-cases and replaces non-alphanumerics in the stream name only', () => {
    expect(streamName('eu-west_1')).toBe('MESH_EU_WEST_1');
    expect(revisionSubject('eu-west_1')).toBe('mesh.eu-west_1.revisions');
    expect(statusBucket('eu-west_1')).toBe('mesh_status_eu-west_1');
  });

  it.each(['', 'a.b', 'a b', 'a*', 'a>', 'x'.repeat(64), 'ü'])('rejects cluster %j', (c) => {
    expect(() => assertClusterName(c)).toThrow(/invalid cluster name/);
    expect(() => streamName(c)).toThrow(/invalid cluster name/);
    expect(() => revisionSubject(c)).toThrow(/invalid cluster name/);
    expect(() => statusBucket(c)).toThrow(/invalid cluster name/);
  });

  it('accepts DNS-like node names as KV keys and rejects what would break a subject', () => {
    for (const n of ['node-a', 'ip-10-0-0-1.ec2.internal', 'n_1', 'a']) expect(nodeStatusKey(n)).toBe(n);
    for (const n of ['', 'a b', 'a*', 'a>', '.a', 'a.', 'a..b', 'a/b']) {
      expect(() => nodeStatusKey(n)).toThrow(/invalid node name/);
    }
  });
});

describe('revisionStreamConfig', () => {
  it('is file-backed, limits retention, 2 min dedupe window, unlimited unless asked', () => {
    const c = revisionStreamConfig('local');
    expect(c).toMatchObject({
      name: 'MESH_LOCAL',
      subjects: ['mesh.local.revisions'],
      storage: 'file',
      retention: 'limits',
      discard: 'old',
      max_msgs: -1,
      duplicate_window: 120_000_000_000,
    });
    expect(revisionStreamConfig('local', { maxMsgs: 10, name: 'S', subject: 's.x' })).toMatchObject({
      name: 'S',
      subjects: ['s.x'],
      max_msgs: 10,
    });
  });
});
