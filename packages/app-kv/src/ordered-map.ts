/**
 * An ordered map from string keys, with cheap copy-on-write clones.
 *
 * Keys live in sorted chunks of at most `MAX_CHUNK` entries (a "sorted list
 * of lists", as in Python's sortedcontainers): a lookup is two binary
 * searches, an insert splices one small array, and an in-order scan walks the
 * chunks. It is far simpler than a B-tree and, at this chunk size, about as
 * fast for the sizes a replicated in-memory store holds.
 *
 * `clone()` is what snapshots need: it copies the list of chunks (n / 512
 * pointers), and both maps then copy a chunk before their first write to it,
 * so a snapshot serialized later sees the state at the clone, while applying
 * goes on.
 *
 * Order is JavaScript's string order (UTF-16 code units).
 */
const MAX_CHUNK = 512;
/** A chunk this small after a delete is merged into a neighbour, so scans do not crawl through crumbs. */
const MERGE_BELOW = MAX_CHUNK / 4;

interface Chunk<V> {
  keys: string[];
  values: V[];
  /** The map that may mutate this chunk in place; any other must copy it first. */
  owner: object;
}

export class OrderedMap<V> {
  private chunks: Chunk<V>[] = [];
  private owner: object = {};
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(key: string): V | undefined {
    const chunk = this.chunks[this.chunkFor(key)];
    if (chunk === undefined) return undefined;
    const index = lowerBound(chunk.keys, key);
    return chunk.keys[index] === key ? chunk.values[index] : undefined;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  set(key: string, value: V): void {
    if (this.chunks.length === 0) {
      this.chunks.push({ keys: [key], values: [value], owner: this.owner });
      this.count = 1;
      return;
    }
    const chunkIndex = this.chunkFor(key);
    const chunk = this.writable(chunkIndex);
    const index = lowerBound(chunk.keys, key);
    if (chunk.keys[index] === key) {
      chunk.values[index] = value;
      return;
    }
    chunk.keys.splice(index, 0, key);
    chunk.values.splice(index, 0, value);
    this.count += 1;
    if (chunk.keys.length > MAX_CHUNK) this.split(chunkIndex);
  }

  delete(key: string): boolean {
    const chunkIndex = this.chunkFor(key);
    const found = this.chunks[chunkIndex];
    if (found === undefined) return false;
    const index = lowerBound(found.keys, key);
    if (found.keys[index] !== key) return false;
    const chunk = this.writable(chunkIndex);
    chunk.keys.splice(index, 1);
    chunk.values.splice(index, 1);
    this.count -= 1;
    if (chunk.keys.length === 0) this.chunks.splice(chunkIndex, 1);
    else if (chunk.keys.length < MERGE_BELOW) this.mergeAround(chunkIndex);
    return true;
  }

  /**
   * Calls `visit` for each entry with `start <= key < end` (no upper bound when
   * `end` is undefined), in key order, until it returns `false`. `visit` must
   * not modify the map.
   */
  forEachInRange(start: string, end: string | undefined, visit: (key: string, value: V) => boolean | void): void {
    const firstChunk = this.chunkFor(start);
    for (let chunkIndex = firstChunk; chunkIndex < this.chunks.length; chunkIndex += 1) {
      const chunk = this.chunks[chunkIndex] as Chunk<V>;
      const first = chunkIndex === firstChunk ? lowerBound(chunk.keys, start) : 0;
      for (let index = first; index < chunk.keys.length; index += 1) {
        const key = chunk.keys[index] as string;
        if (end !== undefined && key >= end) return;
        if (visit(key, chunk.values[index] as V) === false) return;
      }
    }
  }

  /** Every entry in key order. */
  forEach(visit: (key: string, value: V) => boolean | void): void {
    this.forEachInRange("", undefined, visit);
  }

  /**
   * Every entry in key order, lazily: a consumer may stop between entries
   * (to write a snapshot's chunk, say). The map must not change meanwhile; a
   * `clone()` that nothing writes to does not.
   */
  *entries(): Generator<[string, V]> {
    for (const chunk of this.chunks) {
      for (let index = 0; index < chunk.keys.length; index += 1) yield [chunk.keys[index] as string, chunk.values[index] as V];
    }
  }

  /** A copy that shares every chunk until one of the two writes to it. */
  clone(): OrderedMap<V> {
    const copy = new OrderedMap<V>();
    copy.chunks = this.chunks.slice();
    copy.count = this.count;
    // Neither map owns the shared chunks any more: both copy before writing.
    this.owner = {};
    return copy;
  }

  /** Checks the map's structure; for tests. */
  checkInvariants(): void {
    let total = 0;
    let previous: string | undefined;
    for (const chunk of this.chunks) {
      if (chunk.keys.length === 0 || chunk.keys.length > MAX_CHUNK) throw new Error(`chunk of ${chunk.keys.length} keys`);
      if (chunk.keys.length !== chunk.values.length) throw new Error("chunk keys and values differ in length");
      for (const key of chunk.keys) {
        if (previous !== undefined && !(previous < key)) throw new Error(`keys out of order: ${previous} then ${key}`);
        previous = key;
      }
      total += chunk.keys.length;
    }
    if (total !== this.count) throw new Error(`size ${this.count} but ${total} entries`);
  }

  /** The first chunk whose last key is ≥ `key`, else the last chunk (where a larger key is inserted). */
  private chunkFor(key: string): number {
    let low = 0;
    let high = this.chunks.length - 1;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const chunk = this.chunks[middle] as Chunk<V>;
      if ((chunk.keys[chunk.keys.length - 1] as string) < key) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  private writable(chunkIndex: number): Chunk<V> {
    const chunk = this.chunks[chunkIndex] as Chunk<V>;
    if (chunk.owner === this.owner) return chunk;
    const copy = { keys: chunk.keys.slice(), values: chunk.values.slice(), owner: this.owner };
    this.chunks[chunkIndex] = copy;
    return copy;
  }

  private split(chunkIndex: number): void {
    const chunk = this.chunks[chunkIndex] as Chunk<V>;
    const half = chunk.keys.length >>> 1;
    const upper: Chunk<V> = { keys: chunk.keys.splice(half), values: chunk.values.splice(half), owner: this.owner };
    this.chunks.splice(chunkIndex + 1, 0, upper);
  }

  private mergeAround(chunkIndex: number): void {
    const chunk = this.chunks[chunkIndex] as Chunk<V>;
    const next = this.chunks[chunkIndex + 1];
    if (next !== undefined && chunk.keys.length + next.keys.length <= MAX_CHUNK) {
      this.mergeInto(chunkIndex, next);
      return;
    }
    const previous = this.chunks[chunkIndex - 1];
    if (previous !== undefined && chunk.keys.length + previous.keys.length <= MAX_CHUNK) this.mergeInto(chunkIndex - 1, chunk);
  }

  /** Appends `source` (the chunk right after `targetIndex`) to the target chunk and drops it. */
  private mergeInto(targetIndex: number, source: Chunk<V>): void {
    const target = this.writable(targetIndex);
    for (let index = 0; index < source.keys.length; index += 1) {
      target.keys.push(source.keys[index] as string);
      target.values.push(source.values[index] as V);
    }
    this.chunks.splice(targetIndex + 1, 1);
  }
}

/** The index of the first element ≥ `key`. */
function lowerBound(keys: readonly string[], key: string): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((keys[middle] as string) < key) low = middle + 1;
    else high = middle;
  }
  return low;
}
