/*
 * A hash table of fixed-size byte keys and values, held outside the JS heap: what a BPF hash map
 * is, and what the memory backend and the agent's desired maps hold per node.
 *
 * A Map<string, string> of byte strings costs three heap objects per entry (the entry and two
 * strings, ~100 bytes) that every major GC marks; an agent holds ~70k of them per map set at 10k
 * services, and a simulation worker 50 agents. Here an entry is its bytes plus a 4-byte hash in
 * two typed arrays (linear probing, deletes shift the run back: no tombstones, so no periodic
 * rehash of the whole table as a Map does after many deletes). Keys and values go in and out as
 * byte strings (bytestr.ts), the form of map sets and plan ops.
 *
 * Unlike a Map, iteration order is the table's, not insertion order (a BPF map's is not either),
 * and iterators are snapshots: writes during a loop do not disturb it.
 */

const LOAD = 0.6;
const MIN_CAPACITY = 16;

// FNV-1a over the key's chars; never 0, which marks an empty slot.
function hashOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >>> 0 || 1;
}

export class ByteTable implements Map<string, string> {
  private hashes: Uint32Array;
  private data: Uint8Array;
  private mask: number;
  private count = 0;
  private readonly stride: number;

  constructor(
    readonly keySize: number,
    readonly valueSize: number,
    entries?: Iterable<readonly [string, string]>,
  ) {
    this.stride = keySize + valueSize;
    this.hashes = new Uint32Array(MIN_CAPACITY);
    this.data = new Uint8Array(MIN_CAPACITY * this.stride);
    this.mask = MIN_CAPACITY - 1;
    if (entries) for (const [k, v] of entries) this.set(k, v);
  }

  get size(): number {
    return this.count;
  }

  get [Symbol.toStringTag](): string {
    return 'ByteTable';
  }

  has(key: string): boolean {
    return this.find(key, hashOf(key)) >= 0;
  }

  get(key: string): string | undefined {
    const i = this.find(key, hashOf(key));
    return i < 0 ? undefined : this.read(i * this.stride + this.keySize, this.valueSize);
  }

  set(key: string, value: string): this {
    this.put(key, value, true, false);
    return this;
  }

  /**
   * set() in one lookup, for writers that need what was there: the previous value, `value`
   * itself when the entry already held it (nothing written), or undefined for a new key.
   */
  exchange(key: string, value: string): string | undefined {
    return this.put(key, value, true, true) ?? undefined;
  }

  /** set() unless `key` is new and `allowNew` is false (a full map): then false, nothing written. */
  trySet(key: string, value: string, allowNew: boolean): boolean {
    return this.put(key, value, allowNew, false) !== null;
  }

  // Previous value (`value` when unchanged, or when the caller does not want the previous one:
  // reading it makes a string), undefined when inserted, null when refused.
  private put(key: string, value: string, allowNew: boolean, wantOld: boolean): string | undefined | null {
    this.check(key, this.keySize, 'key');
    this.check(value, this.valueSize, 'value');
    const h = hashOf(key);
    let i = this.find(key, h);
    if (i >= 0) {
      const at = i * this.stride + this.keySize;
      if (this.equal(at, value)) return value;
      const old = wantOld ? this.read(at, this.valueSize) : value;
      this.write(at, value);
      return old;
    }
    if (!allowNew) return null;
    if (this.count + 1 > (this.mask + 1) * LOAD) {
      this.resize((this.mask + 1) * 2);
      i = this.find(key, h);
    }
    i = ~i;
    this.hashes[i] = h;
    this.write(i * this.stride, key);
    this.write(i * this.stride + this.keySize, value);
    this.count++;
    return undefined;
  }

  delete(key: string): boolean {
    let i = this.find(key, hashOf(key));
    if (i < 0) return false;
    // Backward shift: move each later entry of the run into the hole unless its home is after it.
    const { hashes, mask, stride } = this;
    for (let j = (i + 1) & mask; hashes[j] !== 0; j = (j + 1) & mask) {
      const home = hashes[j]! & mask;
      const stays = i <= j ? i < home && home <= j : i < home || home <= j;
      if (stays) continue;
      hashes[i] = hashes[j]!;
      this.data.copyWithin(i * stride, j * stride, (j + 1) * stride);
      i = j;
    }
    hashes[i] = 0;
    this.count--;
    if (this.mask + 1 > MIN_CAPACITY && this.count < (this.mask + 1) * LOAD * 0.125)
      this.resize((this.mask + 1) / 2);
    return true;
  }

  clear(): void {
    this.hashes = new Uint32Array(MIN_CAPACITY);
    this.data = new Uint8Array(MIN_CAPACITY * this.stride);
    this.mask = MIN_CAPACITY - 1;
    this.count = 0;
  }

  entries(): MapIterator<[string, string]> {
    const out: Array<[string, string]> = [];
    for (let i = 0; i <= this.mask; i++)
      if (this.hashes[i] !== 0) {
        const at = i * this.stride;
        out.push([this.read(at, this.keySize), this.read(at + this.keySize, this.valueSize)]);
      }
    return out[Symbol.iterator]();
  }

  keys(): MapIterator<string> {
    const out: string[] = [];
    for (let i = 0; i <= this.mask; i++)
      if (this.hashes[i] !== 0) out.push(this.read(i * this.stride, this.keySize));
    return out[Symbol.iterator]();
  }

  values(): MapIterator<string> {
    const out: string[] = [];
    for (let i = 0; i <= this.mask; i++)
      if (this.hashes[i] !== 0) out.push(this.read(i * this.stride + this.keySize, this.valueSize));
    return out[Symbol.iterator]();
  }

  [Symbol.iterator](): MapIterator<[string, string]> {
    return this.entries();
  }

  forEach(fn: (value: string, key: string, map: Map<string, string>) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) fn.call(thisArg, v, k, this);
  }

  /** Bytes held outside the JS heap. */
  get byteLength(): number {
    return this.hashes.byteLength + this.data.byteLength;
  }

  /** The slot of `key`, or ~(the empty slot where it would go). */
  private find(key: string, h: number): number {
    if (key.length !== this.keySize) return -1; // never held (set checks sizes before it looks)
    const { hashes, mask } = this;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const at = hashes[i]!;
      if (at === 0) return ~i;
      if (at === h && this.equal(i * this.stride, key)) return i;
    }
  }

  private equal(at: number, s: string): boolean {
    const d = this.data;
    for (let i = 0; i < s.length; i++) if (d[at + i] !== s.charCodeAt(i)) return false;
    return true;
  }

  private read(at: number, n: number): string {
    // One flat string per call: the managed maps' sizes by hand, the rest through apply.
    const d = this.data;
    const b = (i: number) => d[at + i]!;
    switch (n) {
      case 0:
        return '';
      case 4:
        return String.fromCharCode(b(0), b(1), b(2), b(3));
      case 8:
        return String.fromCharCode(b(0), b(1), b(2), b(3), b(4), b(5), b(6), b(7));
      case 12:
        return String.fromCharCode(b(0), b(1), b(2), b(3), b(4), b(5), b(6), b(7), b(8), b(9), b(10), b(11));
      default:
        return String.fromCharCode.apply(null, d.subarray(at, at + n) as unknown as number[]);
    }
  }

  private write(at: number, s: string): void {
    const d = this.data;
    for (let i = 0; i < s.length; i++) d[at + i] = s.charCodeAt(i);
  }

  private check(s: string, size: number, what: string): void {
    if (s.length !== size) throw new RangeError(`${what} of ${s.length} bytes, expected ${size}`);
    for (let i = 0; i < s.length; i++)
      if (s.charCodeAt(i) > 0xff) throw new RangeError(`${what}: char ${i} is not a byte`);
  }

  private resize(capacity: number): void {
    const { hashes, data, stride } = this;
    this.hashes = new Uint32Array(capacity);
    this.data = new Uint8Array(capacity * stride);
    this.mask = capacity - 1;
    for (let j = 0; j < hashes.length; j++) {
      const h = hashes[j]!;
      if (h === 0) continue;
      let i = h & this.mask;
      while (this.hashes[i] !== 0) i = (i + 1) & this.mask;
      this.hashes[i] = h;
      this.data.set(data.subarray(j * stride, (j + 1) * stride), i * stride);
    }
  }
}
