import {
  decodeExport,
  decodeLinkStatus,
  ExportCodecError,
  encodeExport,
  encodeLinkStatus,
  exportHeaders,
  exportMsgId,
  exportStreamName,
  exportSubject,
  federationBucket,
  importSources,
  importStreamName,
  readExportHeaders,
} from './federation';

const TP = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

describe('federation names', () => {
  test('streams, subjects, bucket and msg ids per cluster', () => {
    expect(exportStreamName('east-1')).toBe('MESH_EXPORT_EAST_1');
    expect(exportSubject('east-1')).toBe('mesh.east-1.export');
    expect(importStreamName('west')).toBe('MESH_IMPORT_WEST');
    expect(federationBucket('west')).toBe('mesh_federation_west');
    expect(exportMsgId('east', 7)).toBe('east:export:7');
    expect(() => exportSubject('a.b')).toThrow(/invalid cluster name/);
  });

  test('the import stream sources each peer export stream through its JetStream domain', () => {
    expect(importSources('west', [{ name: 'east' }, { name: 'north', domain: 'n-js' }])).toEqual([
      {
        name: 'MESH_EXPORT_EAST',
        filter_subject: 'mesh.east.export',
        external: { api: '$JS.east.API', deliver: 'mesh.deliver.west.east' },
      },
      {
        name: 'MESH_EXPORT_NORTH',
        filter_subject: 'mesh.north.export',
        external: { api: '$JS.n-js.API', deliver: 'mesh.deliver.west.north' },
      },
    ]);
  });
});

describe('export codec', () => {
  const msg = {
    cluster: 'east',
    seq: 3,
    revision: 42,
    resources: [
      { kind: 'Service', namespace: 'default', name: 'web', spec: { vip: '127.100.0.1', export: true } },
    ],
  };

  test('round-trips and drops fields that are not part of the view', () => {
    const withExtras = { ...msg, resources: [{ ...msg.resources[0]!, version: 9, origin: undefined }] };
    expect(decodeExport(encodeExport(withExtras))).toEqual(msg);
  });

  test('refuses malformed messages with the path', () => {
    const bad = Buffer.from(JSON.stringify({ v: 1, cluster: 'east', seq: 0, revision: 1, resources: [] }));
    expect(() => decodeExport(bad)).toThrow(
      new ExportCodecError('invalid export message at seq: Too small: expected number to be >0'),
    );
    expect(() => decodeExport(Buffer.from('{'))).toThrow(ExportCodecError);
    const v2 = Buffer.from(JSON.stringify({ ...msg, v: 2 }));
    expect(() => decodeExport(v2)).toThrow(/at v:/);
  });

  test('headers carry seq, source revision, cluster and trace context', () => {
    const h = exportHeaders(msg, { traceparent: TP });
    expect(readExportHeaders(h)).toEqual({
      seq: 3,
      revision: 42,
      cluster: 'east',
      trace: { traceparent: TP },
    });
    expect(readExportHeaders(undefined)).toEqual({
      seq: undefined,
      revision: undefined,
      cluster: undefined,
      trace: undefined,
    });
  });

  test('link status round-trips', () => {
    const s = {
      cluster: 'west',
      peer: 'east',
      state: 'connected' as const,
      since: '2026-11-25T00:00:00.000Z',
      withdrawn: false,
      lastImportedRevision: 42,
      lastImportedSeq: 3,
      lastImportRevision: 17,
      peerSeq: 3,
      lag: 0,
      lastError: null,
      skipped: [
        {
          kind: 'Service',
          namespace: 'default',
          name: 'web.east',
          reason: 'vip-conflict' as const,
          vip: '127.100.0.1:80/TCP',
          holder: { kind: 'Service', namespace: 'default', name: 'legacy' },
          message:
            'Service default/web.east skipped: 127.100.0.1:80/TCP is used by local Service default/legacy',
        },
      ],
      skippedCount: 1,
      updatedAt: '2026-11-25T00:00:01.000Z',
    };
    expect(decodeLinkStatus(encodeLinkStatus(s))).toEqual(s);
    expect(() => decodeLinkStatus(encodeLinkStatus({ ...s, state: 'up' as never }))).toThrow();
    // A value an importer wrote before skips were reported still decodes, with none skipped.
    const { skipped: _s, skippedCount: _c, ...old } = s;
    expect(decodeLinkStatus(Buffer.from(JSON.stringify(old)))).toEqual({
      ...s,
      skipped: [],
      skippedCount: 0,
    });
  });
});
