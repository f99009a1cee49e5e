import fs from 'node:fs';
import path from 'node:path';
import {
  decodeMeta,
  type ErrnoName,
  type MapBackend,
  type MapEntry,
  MapError,
  META_KEY,
  META_KEY_STR,
  type Meta,
  MetaEncoder,
} from './backend';
import { ByteTable } from './byte-table';
import { NOT_A_BYTE } from './bytestr';
import { byteStringToHex, fromByteString, hexToByteString, toByteString } from './codec';
import { LAYOUT_VERSION, MAPS, type MapName, STRUCTS } from './layout';

/*
 * The MEMORY map backend: for machines without BPF privileges and for
 * many-node simulations (principle 8). It is not the data plane; nothing reads
 * these maps on connect(). It keeps the semantics the reconciler relies on, so
 * that code tested here behaves the same on pinned BPF maps:
 *  - byte keys and values of exactly the struct sizes (EINVAL otherwise);
 *  - max_entries per map (E2BIG when a new key does not fit, like a full hash map);
 *  - batches apply in order and stop at the first failure (MapError.done);
 *  - ARRAY maps (mesh_meta) always hold their entries, zero-filled, and reject deletes;
 *  - deleting a missing key is fine (the BPF backend maps ENOENT to success too).
 * Entries are bytes outside the JS heap (byte-table.ts), as a kernel map holds
 * them: a simulation worker holds 50 nodes' maps, and a Map of strings per map
 * would be 70k+ heap objects per node for every major GC to mark. Batches
 * (updateStrings) and read-backs (readStrings) are byte strings, the form of map
 * sets and plan ops. With `file`, every write is persisted (write to a temp file, then rename, so
 * a crash leaves the old or the new file, never half of one): like pinned maps,
 * what was written survives the agent process.
 */

export interface FaultSpec {
  /** Map whose writes fail. */
  map: MapName;
  /** Errno name to fail with; default EIO. */
  code?: ErrnoName;
  /** How many write calls fail before the fault clears itself; default: until clearFaults(). */
  count?: number;
  /** Entries of the batch applied before it fails (a partial batch); default 0. */
  after?: number;
}

export interface MemoryMapBackendOptions {
  /** Persist to this file after every write and load it on open. */
  file?: string;
  /** Override capacities (tests for overflow). */
  maxEntries?: Partial<Record<MapName, number>>;
}

/** The persisted file: keys and values as hex (readable, and what earlier versions wrote). */
interface FileFormat {
  format: 'meshplane-memory-maps';
  layoutVersion: number;
  maps: Record<string, Record<string, string>>;
}

type Op = MapError['op'];

export class MemoryMapBackend implements MapBackend {
  readonly kind = 'memory';
  private readonly maps = new Map<MapName, ByteTable>();
  private faults: Array<FaultSpec & { left: number }> = [];
  private closed = false;
  private readonly meta = new MetaEncoder();
  /** Write calls made (update, delete, writeMeta): lets tests assert "nothing was written". */
  writes = 0;

  private constructor(private readonly opts: MemoryMapBackendOptions) {
    for (const name of Object.keys(MAPS) as MapName[]) {
      const def = MAPS[name];
      const m = new ByteTable(this.sizeOf(name, 'key'), this.sizeOf(name, 'value'));
      if (def.type === 'array') {
        const zero = '\0'.repeat(def.value ? STRUCTS[def.value].size : 0);
        for (let i = 0; i < def.maxEntries; i++) {
          const key = new Uint8Array(STRUCTS[def.key].size);
          new DataView(key.buffer).setUint32(0, i, true);
          m.set(toByteString(key), zero);
        }
      }
      this.maps.set(name, m);
    }
  }

  /** Opens a backend; with `file`, loads what a previous process persisted there. */
  static async open(opts: MemoryMapBackendOptions = {}): Promise<MemoryMapBackend> {
    const b = new MemoryMapBackend(opts);
    if (opts.file && fs.existsSync(opts.file)) b.load(opts.file);
    return b;
  }

  private load(file: string): void {
    const data = JSON.parse(fs.readFileSync(file, 'utf8')) as FileFormat;
    if (data.format !== 'meshplane-memory-maps') throw new Error(`${file} is not a memory map file`);
    // Another layout's bytes would be misread: start empty, as an agent facing foreign pins would.
    if (data.layoutVersion !== LAYOUT_VERSION) return;
    for (const [name, entries] of Object.entries(data.maps)) {
      const m = this.maps.get(name as MapName);
      if (!m) continue;
      try {
        for (const [k, v] of Object.entries(entries)) m.set(hexToByteString(k), hexToByteString(v));
      } catch (err) {
        throw new Error(`${file}: ${name}: ${(err as Error).message}`);
      }
    }
  }

  private persist(): void {
    const file = this.opts.file;
    if (!file) return;
    const out: FileFormat = { format: 'meshplane-memory-maps', layoutVersion: LAYOUT_VERSION, maps: {} };
    for (const [name, m] of this.maps) {
      const entries: Record<string, string> = {};
      for (const [k, v] of m) entries[byteStringToHex(k)] = byteStringToHex(v);
      out.maps[name] = entries;
    }
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(out));
    fs.renameSync(tmp, file);
  }

  /** Fail upcoming writes to a map (errno-like), e.g. to test ERROR status and retries. */
  injectFault(fault: FaultSpec): void {
    this.faults.push({ ...fault, left: fault.count ?? Number.POSITIVE_INFINITY });
  }

  clearFaults(): void {
    this.faults = [];
  }

  private map(name: MapName, op: Op): ByteTable {
    if (this.closed) throw new MapError('EBUSY', name, op, 0, 'backend closed');
    const m = this.maps.get(name);
    if (!m) throw new MapError('EINVAL', name, op, 0, 'no such map');
    return m;
  }

  private sizeOf(name: MapName, what: 'key' | 'value'): number {
    const struct = MAPS[name][what];
    return struct ? STRUCTS[struct].size : 0;
  }

  private checkSize(name: MapName, what: 'key' | 'value', length: number, op: Op, done: number): void {
    const size = this.sizeOf(name, what);
    if (length !== size)
      throw new MapError('EINVAL', name, op, done, `${what} of ${length} bytes, expected ${size}`);
  }

  /** Consumes a matching fault: the number of entries to apply before failing, or -1 for none. */
  private faultFor(name: MapName): { after: number; code: ErrnoName } | undefined {
    if (this.faults.length === 0) return undefined; // every write asks: no closure when none is set
    const f = this.faults.find((x) => x.map === name && x.left > 0);
    if (!f) return undefined;
    f.left--;
    return { after: f.after ?? 0, code: f.code ?? 'EIO' };
  }

  async lookup(map: MapName, key: Uint8Array): Promise<Uint8Array | undefined> {
    const m = this.map(map, 'lookup');
    this.checkSize(map, 'key', key.length, 'lookup', 0);
    const v = m.get(toByteString(key));
    return v === undefined ? undefined : fromByteString(v);
  }

  async *iterate(map: MapName): AsyncIterable<MapEntry> {
    // Snapshot first: writes during iteration must not disturb it (BPF iteration tolerates them too).
    const entries = [...this.map(map, 'iterate')];
    for (const [k, v] of entries) yield [fromByteString(k), fromByteString(v)];
  }

  /** A snapshot of every entry, as held: no bytes are made. */
  async readStrings(map: MapName): Promise<Array<[string, string]>> {
    return [...this.map(map, 'iterate')];
  }

  async update(map: MapName, entries: readonly MapEntry[]): Promise<void> {
    const n = entries.length;
    const keys = new Array<string>(n);
    const values = new Array<string>(n);
    for (let i = 0; i < n; i++) {
      keys[i] = toByteString(entries[i]![0]);
      values[i] = toByteString(entries[i]![1]);
    }
    return this.updateStrings(map, keys, values);
  }

  updateStrings(map: MapName, keys: readonly string[], values: readonly string[]): void {
    const m = this.map(map, 'update');
    this.writes++;
    if (values.length !== keys.length)
      throw new MapError('EINVAL', map, 'update', 0, `${keys.length} keys but ${values.length} values`);
    const fault = this.faultFor(map);
    const def = MAPS[map];
    const max = this.opts.maxEntries?.[map] ?? def.maxEntries;
    let done = 0;
    try {
      for (let i = 0; i < keys.length; i++) {
        if (fault && done >= fault.after)
          throw new MapError(fault.code, map, 'update', done, 'injected fault');
        const k = keys[i]!;
        const v = values[i]!;
        this.checkSize(map, 'key', k.length, 'update', done);
        this.checkSize(map, 'value', v.length, 'update', done);
        let stored: boolean;
        try {
          stored = m.trySet(k, v, def.type !== 'array' && m.size < max);
        } catch {
          // The table checks that every char is a byte (sizes are checked above), before it
          // writes or refuses anything: no second pass over the batch for it here.
          throw new MapError('EINVAL', map, 'update', done, `entry ${i}: not a byte string`);
        }
        if (!stored)
          throw new MapError('E2BIG', map, 'update', done, `${m.size} entries, no room for a new key`);
        done++;
      }
      if (fault) throw new MapError(fault.code, map, 'update', done, 'injected fault');
    } finally {
      if (done > 0) this.persist();
    }
  }

  async delete(map: MapName, keys: readonly Uint8Array[]): Promise<void> {
    return this.deleteStrings(map, keys.map(toByteString));
  }

  deleteStrings(map: MapName, keys: readonly string[]): void {
    const m = this.map(map, 'delete');
    this.writes++;
    if (MAPS[map].type === 'array')
      throw new MapError('EINVAL', map, 'delete', 0, 'array map entries cannot be deleted');
    const fault = this.faultFor(map);
    const bad = firstNotBytes(keys);
    let done = 0;
    try {
      for (let i = 0; i < keys.length; i++) {
        if (fault && done >= fault.after)
          throw new MapError(fault.code, map, 'delete', done, 'injected fault');
        this.checkSize(map, 'key', keys[i]!.length, 'delete', done);
        if (i === bad) throw new MapError('EINVAL', map, 'delete', done, `entry ${i}: not a byte string`);
        m.delete(keys[i]!);
        done++;
      }
      if (fault) throw new MapError(fault.code, map, 'delete', done, 'injected fault');
    } finally {
      if (done > 0) this.persist();
    }
  }

  async readMeta(): Promise<Meta | undefined> {
    const v = await this.lookup('mesh_meta', META_KEY);
    return v ? decodeMeta(v) : undefined;
  }

  writeMeta(meta: Meta): void {
    this.updateStrings('mesh_meta', [META_KEY_STR], [this.meta.encode(meta)]);
  }

  /** Entries currently held (tests and simulations). */
  size(map: MapName): number {
    return this.maps.get(map)?.size ?? 0;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/**
 * The first key of a delete batch with a char above 0xff, or -1 (a lookup would just miss it;
 * updates are checked by the table). A test per string, without joining the batch: the join
 * was ~3% of what an apply allocates, for a check that almost never fails.
 */
function firstNotBytes(keys: readonly string[]): number {
  for (let i = 0; i < keys.length; i++) if (NOT_A_BYTE.test(keys[i]!)) return i;
  return -1;
}
