import fs from 'node:fs';
import path from 'node:path';

/*
 * cgroup v2 helpers. The agent owns one cgroup (MESH_CGROUP); each workload of its node
 * runs in a child `<namespace>.<name>`, whose cgroup id (the directory's inode number,
 * what bpf_get_current_cgroup_id() returns) is the key of mesh_identities.
 *
 * Safety (DESIGN.md): programs are attached to the agent's cgroup, so that cgroup must
 * never be the root of the hierarchy (every process on the machine) nor a cgroup outside
 * the agent's own subtree (someone else's processes). Every path is checked here before
 * anything is attached, created or removed.
 */

interface MountEntry {
  mountPoint: string;
  fsType: string;
}

// /proc/mounts escapes spaces and tabs as octal (\040).
const unescapeMount = (s: string) =>
  s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));

export function readMounts(file = '/proc/mounts'): MountEntry[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [, mountPoint = '', fsType = ''] = line.split(' ');
      return { mountPoint: unescapeMount(mountPoint), fsType };
    });
}

/** The cgroup v2 mount point, read from /proc/mounts (hybrid hosts mount it at .../unified). */
export function cgroup2Mount(): string | undefined {
  return readMounts().find((m) => m.fsType === 'cgroup2')?.mountPoint;
}

/** Mount points of bpffs (where maps and links can be pinned). */
export function bpffsMounts(): string[] {
  return readMounts()
    .filter((m) => m.fsType === 'bpf')
    .map((m) => m.mountPoint);
}

/** This process's cgroup v2 directory (from the `0::` line of /proc/self/cgroup). */
export function ownCgroupDir(): string {
  const mount = cgroup2Mount();
  if (!mount) throw new Error('no cgroup2 filesystem is mounted (see /proc/mounts)');
  const line = fs
    .readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('0::'));
  if (!line) throw new Error('this process is in no cgroup v2 (no 0:: line in /proc/self/cgroup)');
  return path.join(mount, line.slice(3));
}

const isWithin = (dir: string, parent: string) =>
  dir === parent || dir.startsWith(parent.endsWith('/') ? parent : `${parent}/`);

/**
 * Resolves and checks the agent's cgroup: it must be a directory strictly below the
 * cgroup2 mount root, inside this process's own cgroup subtree. Created if missing.
 */
export function resolveAgentCgroup(dir: string): string {
  const mount = cgroup2Mount();
  if (!mount) throw new Error('no cgroup2 filesystem is mounted (see /proc/mounts)');
  const abs = path.resolve(dir);
  if (abs === path.resolve(mount))
    throw new Error(`refusing the root cgroup ${abs}: programs there would see every process`);
  if (!isWithin(abs, mount)) throw new Error(`${abs} is not inside the cgroup2 mount ${mount}`);
  const own = ownCgroupDir();
  if (!isWithin(abs, own)) throw new Error(`${abs} is outside this agent's own cgroup subtree ${own}`);
  fs.mkdirSync(abs, { recursive: true });
  const real = fs.realpathSync(abs);
  if (real !== abs) throw new Error(`${abs} resolves to ${real}: give the real path`);
  if (!fs.existsSync(path.join(real, 'cgroup.procs')))
    throw new Error(`${real} is not a cgroup v2 directory`);
  return real;
}

/** The cgroup id the kernel reports for processes in `dir` (its inode number). */
export function cgroupId(dir: string): bigint {
  return fs.statSync(dir, { bigint: true }).ino;
}

// Workload names are DNS labels; anything else could escape the agent's directory.
const SAFE_PART = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function workloadCgroupName(namespace: string, name: string): string {
  if (!SAFE_PART.test(namespace) || !SAFE_PART.test(name))
    throw new Error(`workload ${namespace}/${name}: namespace and name must be DNS labels`);
  return `${namespace}.${name}`;
}

/** Creates (idempotently) the cgroup of a workload under the agent's cgroup. */
export function ensureWorkloadCgroup(agentCgroup: string, namespace: string, name: string): string {
  const dir = path.join(agentCgroup, workloadCgroupName(namespace, name));
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** The cgroup id of a workload, or undefined while its cgroup does not exist. */
export function workloadCgroupId(agentCgroup: string, namespace: string, name: string): bigint | undefined {
  try {
    return cgroupId(path.join(agentCgroup, workloadCgroupName(namespace, name)));
  } catch {
    return undefined;
  }
}

/** Workload cgroups present under the agent's cgroup: `<namespace>.<name>` -> cgroup id. */
export function listWorkloadCgroups(agentCgroup: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const e of fs.readdirSync(agentCgroup, { withFileTypes: true })) {
    if (e.isDirectory() && /^[^.]+\.[^.]+$/.test(e.name))
      out.set(e.name, cgroupId(path.join(agentCgroup, e.name)));
  }
  return out;
}

/** Moves a process into a cgroup; its later socket calls run that cgroup's programs. */
export function movePid(cgroupDir: string, pid: number): void {
  fs.writeFileSync(path.join(cgroupDir, 'cgroup.procs'), `${pid}\n`);
}

export function cgroupPids(cgroupDir: string): number[] {
  return fs
    .readFileSync(path.join(cgroupDir, 'cgroup.procs'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map(Number);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Removes a cgroup and its descendants bottom-up, SIGKILLing what still runs in them
 * first (a populated cgroup cannot be removed). For the agent's teardown and tests: the
 * same safety check as resolveAgentCgroup applies, so it cannot touch foreign cgroups.
 */
export async function destroyCgroupTree(dir: string, timeoutMs = 5_000): Promise<void> {
  const mount = cgroup2Mount();
  const abs = path.resolve(dir);
  if (!mount || abs === path.resolve(mount) || !isWithin(abs, mount) || !isWithin(abs, ownCgroupDir()))
    throw new Error(`refusing to destroy ${abs}: not a cgroup inside this process's own subtree`);
  if (!fs.existsSync(abs)) return;
  for (const e of fs.readdirSync(abs, { withFileTypes: true })) {
    if (e.isDirectory()) await destroyCgroupTree(path.join(abs, e.name), timeoutMs);
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const pid of cgroupPids(abs)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    try {
      fs.rmdirSync(abs);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      // EBUSY until killed processes are reaped and leave the cgroup.
      if (code !== 'EBUSY' || Date.now() > deadline) throw err;
    }
    await sleep(20);
  }
}
