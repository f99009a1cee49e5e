/*
 * Several Meshplane clusters on one machine for the federation tests: per cluster a private
 * nats-server (JetStream domain = cluster name), a fresh database, and in this process the relay,
 * the importer and one agent on the memory map backend. The NATS servers are linked by leafnodes,
 * as a hub (the first cluster) with leaves or as a full mesh (nats-config.ts explains both).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { logicalView, MemoryMapBackend, readMaps } from '@meshplane/dataplane';
import type { Change, MeshState } from '@meshplane/domain';
import { EventStore, migrateToLatest } from '@meshplane/event-store';
import {
  connectNats,
  decodeNodeStatus,
  type FederationLinkStatus,
  openFederationBucket,
  readLinkStatuses,
  statusBucket,
} from '@meshplane/messaging';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { type AgentHandle, silentLogger, startAgent } from '../../services/agent/src';
import { type ImporterHandle, startImporter } from '../../services/importer/src';
import { type RelayHandle, startRelay } from '../../services/relay/src';
import { createTestDatabase, freePort, PrivateNats, type TestDatabase, waitFor } from '../harness';
import { type FederationTopology, hubNatsConfig, meshNatsConfig } from './nats-config';

export interface FederationOptions {
  cacheTtlMs?: number;
  probeMs?: number;
  /** Keep importer log lines (for failure messages). */
  logs?: Array<Record<string, unknown>>;
  /** How the clusters' NATS servers are linked; default 'hub'. */
  topology?: FederationTopology;
}

export class FedCluster {
  relay: RelayHandle | undefined;
  importer: ImporterHandle | undefined;
  agent: AgentHandle | undefined;
  backend: MemoryMapBackend | undefined;
  nc: NatsConnection | undefined;
  readonly node = 'n1';

  constructor(
    readonly name: string,
    readonly peers: string[],
    readonly nats: PrivateNats,
    readonly db: TestDatabase,
    readonly store: EventStore,
    readonly dir: string,
    private readonly opts: FederationOptions,
  ) {}

  async startServices(): Promise<void> {
    const silent = () => undefined;
    this.relay = await startRelay({
      cluster: this.name,
      databaseUrl: this.db.url,
      natsUrl: this.nats.url,
      pollMs: 200,
      lockRetryMs: 100,
      sessionCheckMs: 1_000,
      batchSize: 500,
      publishWindow: 64,
      stepDownAfterMs: 60_000,
      logLevel: 'info',
      instanceId: `relay-${this.name}`,
      logSink: this.opts.logs ? (l) => this.opts.logs!.push({ cluster: this.name, ...l }) : silent,
    });
    await this.startImporterOnly();
    this.nc = await connectNats(this.nats.url, {
      name: `fed-test-${this.name}`,
      firstConnectTimeoutMs: 10_000,
    });
    this.backend = await MemoryMapBackend.open({ file: path.join(this.dir, `${this.name}.maps.json`) });
    this.agent = await startAgent(
      {
        node: this.node,
        cluster: this.name,
        natsUrl: this.nats.url,
        dataplane: 'memory',
        stateFile: path.join(this.dir, `${this.name}.maps.json`),
        heartbeatMs: 500,
        fullPassMs: 60_000,
        recentApplies: 64,
        agentVersion: '0.1.0-fed-e2e',
      },
      { backend: this.backend, nc: this.nc, log: silentLogger, retryMs: 200 },
    );
  }

  async startImporterOnly(instance = `importer-${this.name}`): Promise<ImporterHandle> {
    const logs = this.opts.logs;
    this.importer = await startImporter({
      cluster: this.name,
      databaseUrl: this.db.url,
      natsUrl: this.nats.url,
      peers: this.peers.map((p) => ({ name: p, domain: p })),
      cacheTtlMs: this.opts.cacheTtlMs ?? 3_000,
      probeMs: this.opts.probeMs ?? 200,
      probeTimeoutMs: 500,
      lockRetryMs: 100,
      logLevel: 'info',
      instanceId: instance,
      logSink: logs ? (l) => logs.push({ cluster: this.name, ...l }) : () => undefined,
    });
    return this.importer;
  }

  /** One local revision, as the API would append it. */
  async commit(changes: Change[], reason = 'federation e2e', traceContext?: string): Promise<number> {
    const r = await this.store.append(changes, {
      actor: 'fed-e2e',
      reason,
      traceContext: traceContext ?? null,
    });
    if (r.status !== 'appended') throw new Error(`expected a new revision in ${this.name}, got ${r.status}`);
    return r.changeSet.revision;
  }

  state(): Promise<MeshState> {
    return this.store.currentState();
  }

  /** Import change sets of this cluster's log from `peer`, oldest first. */
  async imports(peer: string): Promise<
    Array<{
      revision: number;
      reason: string;
      traceContext: string | null;
      federation: Record<string, unknown>;
    }>
  > {
    const { rows } = await this.store.pool.query<{
      revision: string;
      reason: string;
      trace_context: string | null;
      metadata: Record<string, unknown>;
    }>(
      'SELECT revision, reason, trace_context, metadata FROM change_sets WHERE actor = $1 ORDER BY revision',
      [`federation:${peer}`],
    );
    return rows.map((r) => ({
      revision: Number(r.revision),
      reason: r.reason,
      traceContext: r.trace_context,
      federation: (r.metadata.federation ?? {}) as Record<string, unknown>,
    }));
  }

  /** The revision this cluster's agent has applied (0 before its first status). */
  async appliedRevision(): Promise<number> {
    const kv = await new Kvm(jetstream(this.nc!)).open(statusBucket(this.name));
    const e = await kv.get(this.node);
    return e?.operation === 'PUT' ? decodeNodeStatus(e.value).appliedRevision : 0;
  }

  /** `addr:port/PROTO` slots of `vip:port/TCP` in the agent's maps (empty when not programmed). */
  async slots(frontend: string): Promise<string[]> {
    const maps = await readMaps(this.backend!);
    return [...new Set(logicalView(maps).frontends[frontend]?.slots ?? [])].sort();
  }

  /** Waits until the agent applied the log's head, then returns `frontend`'s backends. */
  async syncedSlots(frontend: string): Promise<string[]> {
    const head = (await this.store.reader.head()).revision;
    await waitFor(async () => (await this.appliedRevision()) >= head, {
      timeoutMs: 20_000,
      what: `${this.name}'s agent to apply revision ${head}`,
    });
    return this.slots(frontend);
  }

  async links(): Promise<FederationLinkStatus[]> {
    try {
      return await readLinkStatuses(await openFederationBucket(jetstream(this.nc!), this.name));
    } catch {
      return [];
    }
  }

  async link(peer: string): Promise<FederationLinkStatus | undefined> {
    return (await this.links()).find((l) => l.peer === peer);
  }

  async stopServices(): Promise<void> {
    await this.agent?.stop().catch(() => undefined);
    await this.importer?.stop().catch(() => undefined);
    await this.relay?.stop().catch(() => undefined);
    await this.nc?.close().catch(() => undefined);
    this.agent = undefined;
    this.importer = undefined;
    this.relay = undefined;
    this.nc = undefined;
  }

  async destroy(): Promise<void> {
    await this.stopServices();
    await this.store.close().catch(() => undefined);
    await this.nats.destroy().catch(() => undefined);
    await this.db.drop().catch(() => undefined);
  }
}

/** NATS config text of every cluster in `names`, linked as `topology` says. */
async function federationNatsConfigs(
  names: readonly string[],
  topology: FederationTopology,
): Promise<Record<string, string>> {
  const configs: Record<string, string> = {};
  if (topology === 'hub') {
    const hubLeafPort = await freePort();
    for (const [i, name] of names.entries()) configs[name] = hubNatsConfig(name, hubLeafPort, i === 0);
    return configs;
  }
  const leafPorts: Record<string, number> = {};
  for (const name of names) leafPorts[name] = await freePort();
  for (const name of names) configs[name] = meshNatsConfig(name, leafPorts);
  return configs;
}

/** Starts `names` as a federation (hub: names[0] is the hub); every cluster imports all others. */
export async function startFederation(names: string[], opts: FederationOptions = {}): Promise<FedCluster[]> {
  const configs = await federationNatsConfigs(names, opts.topology ?? 'hub');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fed-e2e-'));
  const clusters: FedCluster[] = [];
  try {
    for (const name of names) {
      const nats = await PrivateNats.start({ name: `fed-${name}`, config: configs[name] });
      const db = await createTestDatabase(`fed_${name}`);
      await migrateToLatest(db.url);
      const store = await EventStore.open({
        databaseUrl: db.url,
        cluster: name,
        poolSize: 3,
        snapshotInterval: 0,
      });
      clusters.push(
        new FedCluster(
          name,
          names.filter((n) => n !== name),
          nats,
          db,
          store,
          dir,
          opts,
        ),
      );
    }
    for (const c of clusters) await c.startServices();
    return clusters;
  } catch (err) {
    await stopFederation(clusters);
    throw err;
  }
}

export async function stopFederation(clusters: FedCluster[]): Promise<void> {
  for (const c of clusters) await c.stopServices();
  for (const c of clusters) await c.destroy();
  const dir = clusters[0]?.dir;
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}

export function service(name: string, vip: string, extra: Record<string, unknown> = {}): Change {
  return {
    op: 'put',
    kind: 'Service',
    namespace: 'default',
    name,
    spec: { vip, ports: [{ port: 9080, protocol: 'TCP' }], selector: { app: name }, export: true, ...extra },
  };
}

export function workload(name: string, address: string, app: string, node = 'n1'): Change {
  return {
    op: 'put',
    kind: 'Workload',
    namespace: 'default',
    name,
    spec: { address, node, labels: { app, version: 'v1' }, identity: app },
  };
}

export const del = (kind: string, name: string): Change => ({
  op: 'delete',
  kind,
  namespace: 'default',
  name,
});

/** `Kind/name` of the resources imported from `origin`, sorted. */
export const importedNames = async (c: FedCluster, origin: string): Promise<string[]> =>
  [...(await c.state()).resources.values()]
    .filter((r) => r.origin === origin)
    .map((r) => `${r.kind}/${r.name}`)
    .sort();

/** Rethrows `err` with the last 30 importer log records, so a failed wait says what happened. */
export function failWithLog(logs: ReadonlyArray<Record<string, unknown>>, err: unknown): never {
  const tail = logs.slice(-30).map((l) => JSON.stringify(l));
  throw new Error(`${(err as Error).message}\n--- importer log (last 30) ---\n${tail.join('\n')}`);
}
