import fs from 'node:fs';
import path from 'node:path';
import {
  BpfMapBackend,
  bpfAvailable,
  type CgroupIdOf,
  fakeCgroupId,
  type MapBackend,
  MemoryMapBackend,
  resolveAgentCgroup,
  teardownPinDir,
} from '@meshplane/dataplane';
import { type AgentConfig, defaultBpfPinDir } from './config';
import type { Logger } from './logger';
import { WorkloadCgroups } from './workload-cgroups';

/*
 * Which map backend a node agent runs, and everything that comes with it:
 *   - bpf: maps pinned under MESH_BPF_PIN_DIR and the programs of MESH_BPF_OBJECT attached
 *     to MESH_CGROUP through pinned links; an agent that starts over existing pins ADOPTS
 *     them (maps reused, links' programs swapped in place), so a restart never interrupts
 *     traffic. Stopping (SIGTERM, or kill -9) leaves them in place on purpose; only
 *     `teardownDataplane` (MESH_TEARDOWN=1) removes them.
 *   - memory: simulated maps for machines without BPF and many-node simulations; nothing is
 *     steered.
 */

export type DataplaneKind = 'bpf' | 'memory';

export interface DataplaneChoice {
  kind: DataplaneKind;
  /** Why, for the log: what was asked for, or what the probe found. */
  reason: string;
}

/**
 * MESH_DATAPLANE=bpf|memory is obeyed (bpf fails loudly when the machine cannot run it);
 * unset (auto) picks bpf when the probe passes AND a cgroup is configured, else memory.
 */
export function selectDataplane(
  config: Pick<AgentConfig, 'dataplane' | 'cgroup'>,
  probe: () => true | string = bpfAvailable,
): DataplaneChoice {
  if (config.dataplane === 'memory') return { kind: 'memory', reason: 'MESH_DATAPLANE=memory' };
  const available = probe();
  if (config.dataplane === 'bpf') {
    if (available !== true) throw new Error(`MESH_DATAPLANE=bpf, but BPF is unavailable here: ${available}`);
    if (!config.cgroup) throw new Error('MESH_DATAPLANE=bpf needs MESH_CGROUP (the cgroup the agent owns)');
    return { kind: 'bpf', reason: 'MESH_DATAPLANE=bpf' };
  }
  if (available !== true)
    return { kind: 'memory', reason: `MESH_DATAPLANE unset and BPF is unavailable: ${available}` };
  if (!config.cgroup)
    return {
      kind: 'memory',
      reason: 'MESH_DATAPLANE unset: BPF is available but MESH_CGROUP is not set (no cgroup to attach to)',
    };
  return { kind: 'bpf', reason: 'MESH_DATAPLANE unset and BPF is available' };
}

export interface DataplaneInfo {
  backend: DataplaneKind;
  reason: string;
  pinDir?: string;
  cgroup?: string;
  /** Per program: attached fresh, or adopted from the pins of an earlier agent. */
  attachments?: Record<string, string>;
}

export interface Dataplane {
  backend: MapBackend;
  info: DataplaneInfo;
  cgroupIdOf: CgroupIdOf;
  /** The workload cgroups under MESH_CGROUP (bpf only). */
  cgroups?: WorkloadCgroups;
}

/** Opens the backend the configuration asks for, and logs which one and why. */
export async function openDataplane(config: AgentConfig, log: Logger): Promise<Dataplane> {
  const choice = selectDataplane(config);
  if (choice.kind === 'memory') {
    log.info('dataplane: memory (maps are simulated, no traffic is steered)', {
      dataplane: 'memory',
      reason: choice.reason,
      stateFile: config.stateFile ?? null,
    });
    const backend = await MemoryMapBackend.open(config.stateFile ? { file: config.stateFile } : {});
    return { backend, info: { backend: 'memory', reason: choice.reason }, cgroupIdOf: fakeCgroupId };
  }
  if (config.stateFile) log.warn('MESH_STATE_FILE is ignored with the bpf dataplane (the maps are pinned)');
  const pinDir = config.bpfPinDir ?? defaultBpfPinDir(config.node);
  const opts = { node: config.node, pinDir, cgroup: config.cgroup! };
  const backend = await BpfMapBackend.open(config.bpfObject ? { ...opts, object: config.bpfObject } : opts);
  const dp = fromBpfBackend(backend, config.node, choice.reason, log);
  const adopted = Object.values(backend.attachments).filter((a) => a === 'adopted').length;
  log.info(`dataplane: bpf (${adopted ? 'adopted existing pins and links' : 'programs attached'})`, {
    dataplane: 'bpf',
    reason: choice.reason,
    pinDir: backend.pinDir,
    cgroup: backend.cgroup,
    attachments: backend.attachments,
  });
  return dp;
}

/** The Dataplane of an already open BpfMapBackend (the agent's own, or one a test passes in). */
export function fromBpfBackend(backend: BpfMapBackend, node: string, reason: string, log: Logger): Dataplane {
  const info: DataplaneInfo = {
    backend: 'bpf',
    reason,
    pinDir: backend.pinDir,
    attachments: { ...backend.attachments },
  };
  if (!backend.cgroup) return { backend, info, cgroupIdOf: () => undefined };
  info.cgroup = backend.cgroup;
  const cgroups = new WorkloadCgroups(backend.cgroup, node, (key, message) =>
    log.warn('cannot create workload cgroup', { workload: key, error: message }),
  );
  return { backend, info, cgroupIdOf: cgroups.idOf, cgroups };
}

export interface TeardownReport {
  pinDir: string;
  pins: 'removed' | 'absent';
  cgroupsRemoved: string[];
  /** Cgroups left in place (still holding processes, or not created by an agent), with why. */
  cgroupsLeft: Array<{ path: string; reason: string }>;
}

const WORKLOAD_CGROUP = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * The operator's (and the tests') cleanup of a node: detaches every program (pinned links),
 * unpins the maps and removes the pin dir, then removes the workload cgroups and MESH_CGROUP
 * itself when they are empty. It never kills anything: a cgroup still holding processes is
 * left and reported. Safe to run on what a dead agent left, and when nothing is there.
 * Never run it beside a live agent of the same node (it would re-attach on its next start).
 */
export function teardownDataplane(config: AgentConfig, log: Logger): TeardownReport {
  const pinDir = config.bpfPinDir ?? defaultBpfPinDir(config.node);
  const report: TeardownReport = { pinDir, pins: 'absent', cgroupsRemoved: [], cgroupsLeft: [] };
  if (fs.existsSync(pinDir)) {
    teardownPinDir(pinDir);
    report.pins = 'removed';
  }
  if (config.cgroup && fs.existsSync(config.cgroup)) {
    // Same checks as at start-up: never the root cgroup, never outside our own subtree.
    const root = resolveAgentCgroup(config.cgroup);
    const rm = (dir: string) => {
      try {
        fs.rmdirSync(dir);
        report.cgroupsRemoved.push(dir);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        report.cgroupsLeft.push({
          path: dir,
          reason: code === 'EBUSY' ? 'processes still run in it' : (err as Error).message,
        });
      }
    };
    for (const e of fs.readdirSync(root, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      if (WORKLOAD_CGROUP.test(e.name)) rm(path.join(root, e.name));
      else report.cgroupsLeft.push({ path: path.join(root, e.name), reason: 'not a workload cgroup' });
    }
    if (report.cgroupsLeft.length === 0) rm(root);
  }
  log.info('teardown done', { ...report });
  return report;
}

/** The data plane's own facts, written beside the NodeStatus fields as `dataplane` in the KV value. */
export interface DataplaneStatus extends DataplaneInfo {
  fullPasses: number;
  /** Entries that full passes rewrote or deleted because the maps had drifted, since start. */
  repairs: number;
  lastRepairAt: string | null;
  /** Workloads of this node, and how many of them have a cgroup (bpf only). */
  workloads?: number;
  workloadCgroups?: number;
  /** Identity refreshes caused by workload cgroups appearing, vanishing or being re-created. */
  cgroupRefreshes?: number;
  /** When this agent process started (tells a restarted agent's status from its predecessor's). */
  startedAt: string;
}
