import type { CompiledMaps } from './compile';
import { emptyAssignments } from './ids';
import { MANAGED_MAPS, type ManagedMapName } from './layout';
import { digestOf, emptyMapSet, entryDigest, type TableSet } from './maps';

type KeySets = Record<ManagedMapName, Set<string>>;
type TouchedKeys = Partial<KeySets>;

function noKeys(): KeySets {
  return Object.fromEntries(MANAGED_MAPS.map((m) => [m, new Set<string>()])) as KeySets;
}

/**
 * The incremental compiler's desired maps: writes keep the digest current
 * and record the keys each update touched, and a redone service's old entries
 * are only retired (deleted at the end of the update unless written again):
 * most of them come back unchanged, and then neither the digest nor the
 * touched keys (so neither plan nor map writes) see them.
 */
export class DesiredWriter {
  desired: CompiledMaps;
  /** desired.maps, as the tables they are. */
  private tables: TableSet;
  private lo = 0;
  private hi = 0;
  /** Keys written or deleted since begin(), per map (a Set only for maps that had one). */
  private touched: TouchedKeys = {};
  private readonly retiring = noKeys();
  /** Off during a reset, where every entry is new: its touched keys are the maps' keys. */
  tracking = true;

  constructor(private readonly node: string) {
    this.tables = emptyMapSet();
    this.desired = this.blank(0);
  }

  private blank(revision: number): CompiledMaps {
    const stats = { frontends: 0, backends: 0, slots: 0, identities: 0, policies: 0, skipped: [] };
    return { node: this.node, revision, maps: this.tables, ids: emptyAssignments(), stats, digest: 0n };
  }

  /** Empty maps and ids (a new object: results handed out before keep what they held). */
  clear(revision: number): void {
    this.tables = emptyMapSet();
    this.desired = this.blank(revision);
    this.lo = this.hi = 0;
    for (const m of MANAGED_MAPS) this.retiring[m].clear();
  }

  /** Starts an update: fresh touched keys. */
  begin(): TouchedKeys {
    this.touched = {};
    return this.touched;
  }

  private touch(map: ManagedMapName, key: string): void {
    let keys = this.touched[map];
    if (!keys) {
      keys = new Set();
      this.touched[map] = keys;
    }
    keys.add(key);
  }

  retire(map: ManagedMapName, key: string): void {
    this.retiring[map].add(key);
  }

  /** Deletes the retired entries no redo wrote again. */
  dropRetired(): void {
    for (const map of MANAGED_MAPS) {
      const keys = this.retiring[map];
      // Most maps retire nothing in an update; clear() would still allocate a fresh table.
      if (keys.size === 0) continue;
      for (const key of keys) this.del(map, key);
      keys.clear();
    }
  }

  set(map: ManagedMapName, key: string, value: string): void {
    const retiring = this.retiring[map];
    if (retiring.size > 0) retiring.delete(key);
    // One lookup: most redone entries come back unchanged (then no string is made, nothing written).
    const old = this.tables[map].exchange(key, value);
    if (old === value) return;
    if (old !== undefined) this.digest(map, key, old, -1);
    this.digest(map, key, value, 1);
    if (this.tracking) this.touch(map, key);
  }

  del(map: ManagedMapName, key: string): void {
    const m = this.desired.maps[map];
    const old = m.get(key);
    if (old === undefined) return;
    this.digest(map, key, old, -1);
    m.delete(key);
    if (this.tracking) this.touch(map, key);
  }

  /** Revision, digest and stats of the maps as they now stand. */
  finish(revision: number, skipped: string[]): CompiledMaps {
    const d = this.desired;
    d.revision = revision;
    d.digest = digestOf(this.lo, this.hi);
    d.stats = {
      frontends: d.maps.mesh_services.size,
      backends: d.maps.mesh_backends.size,
      slots: d.maps.mesh_slots.size,
      identities: d.maps.mesh_identities.size,
      policies: d.maps.mesh_policy.size,
      skipped,
    };
    return d;
  }

  private digest(map: ManagedMapName, key: string, value: string, sign: 1 | -1): void {
    const [a, b] = entryDigest(map, key, value);
    this.lo = (this.lo + sign * a) >>> 0;
    this.hi = (this.hi + sign * b) >>> 0;
  }
}
