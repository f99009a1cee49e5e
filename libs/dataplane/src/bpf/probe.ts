import fs from 'node:fs';
import { bpffsMounts, cgroup2Mount } from './cgroup';
import { addonPath, isNativeError, loadAddon, objectPath } from './native';

/*
 * Can this process run the real data plane? Each check names what is missing, so a
 * skipped (or, with CI=true, failed) test says exactly why instead of "no BPF".
 */

/** `true` when the BPF backend can be used here, else the reason it cannot. */
export function bpfAvailable(): true | string {
  if (process.platform !== 'linux') return `BPF needs Linux (this is ${process.platform})`;
  if (!cgroup2Mount()) return 'no cgroup2 filesystem is mounted (see /proc/mounts)';
  if (!bpffsMounts().includes('/sys/fs/bpf'))
    return 'bpffs is not mounted at /sys/fs/bpf (scripts/ensure-bpf.sh mounts it)';
  if (!fs.existsSync(objectPath())) return `${objectPath()} is missing: run scripts/ensure-bpf.sh`;
  if (!fs.existsSync(addonPath())) return `${addonPath()} is missing: run scripts/ensure-bpf.sh`;
  try {
    loadAddon().probe();
  } catch (err) {
    if (isNativeError(err))
      return `cannot create BPF maps (${err.code}): CAP_BPF/CAP_SYS_ADMIN or a newer kernel is needed`;
    return `cannot load ${addonPath()}: ${(err as Error).message}`;
  }
  return true;
}
