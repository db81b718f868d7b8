/**
 * The memo of Lowe's optimization: which (set of linearized operations,
 * state) pairs the search has already explored.
 *
 * The search spends most of its time here, on lookups that hit (a path that
 * reaches an explored pair is pruned), and those are bound by memory latency.
 * So the table is flat: one `Int32Array` of fixed-size records
 * `[hash, next, stateId, set words...]` chained from an `Int32Array` of bucket
 * heads. A lookup touches the bucket head and then, usually, a single record
 * that fits in one cache line, and the table creates no garbage. (A `Map` of
 * entry objects holding their own `Uint32Array` measured about twice as slow
 * on the hardest recorded histories.)
 *
 * States are identified by a small integer (`stateId`), interned by the
 * caller from the model's canonical `hash` string. For models that only
 * provide `equal`, the caller passes the same id for every state and the
 * table keeps the states aside and compares them with `equal`.
 *
 * Every candidate is compared exactly (set words and state), so a hash
 * collision can only cost time, never prune a path wrongly.
 */

const NO_RECORD = -1;
const INITIAL_RECORDS = 1024;
/** Record layout: offsets within a record. */
const HASH = 0;
const NEXT = 1;
const STATE_ID = 2;
const WORDS = 3;

export class MemoTable<State> {
  size = 0;
  private readonly stride: number;
  private records: Int32Array;
  private buckets: Int32Array;
  private bucketMask: number;
  /** States by record index, only for models compared with `equal`. */
  private readonly states: State[] = [];

  constructor(
    private readonly wordsPerSet: number,
    private readonly statesEqual?: (left: State, right: State) => boolean,
  ) {
    this.stride = WORDS + wordsPerSet;
    this.records = new Int32Array(INITIAL_RECORDS * this.stride);
    this.buckets = new Int32Array(INITIAL_RECORDS).fill(NO_RECORD);
    this.bucketMask = INITIAL_RECORDS - 1;
  }

  /**
   * Records the pair (`set` with bit `bit` of word `wordIndex` added, state)
   * unless already present. Returns whether it was absent. `hash` must depend
   * only on the pair.
   */
  addIfAbsent(hash: number, set: Uint32Array, wordIndex: number, bit: number, stateId: number, state: State): boolean {
    const { records, stride, wordsPerSet, statesEqual } = this;
    for (let record = this.buckets[hash & this.bucketMask] as number; record !== NO_RECORD; record = records[record * stride + NEXT] as number) {
      const base = record * stride;
      if (records[base + HASH] !== hash || records[base + STATE_ID] !== stateId) continue;
      let sameSet = true;
      for (let word = 0; word < wordsPerSet; word++) {
        const expected = word === wordIndex ? (set[word] as number) | bit : (set[word] as number) | 0;
        if (records[base + WORDS + word] !== expected) {
          sameSet = false;
          break;
        }
      }
      if (sameSet && (statesEqual === undefined || statesEqual(this.states[record] as State, state))) return false;
    }
    this.append(hash, set, wordIndex, bit, stateId, state);
    return true;
  }

  private append(hash: number, set: Uint32Array, wordIndex: number, bit: number, stateId: number, state: State): void {
    if ((this.size + 1) * this.stride > this.records.length) {
      const larger = new Int32Array(this.records.length * 2);
      larger.set(this.records);
      this.records = larger;
    }
    const record = this.size;
    const base = record * this.stride;
    const records = this.records;
    const bucket = hash & this.bucketMask;
    records[base + HASH] = hash;
    records[base + NEXT] = this.buckets[bucket] as number;
    records[base + STATE_ID] = stateId;
    for (let word = 0; word < this.wordsPerSet; word++) {
      records[base + WORDS + word] = word === wordIndex ? (set[word] as number) | bit : (set[word] as number);
    }
    this.buckets[bucket] = record;
    if (this.statesEqual !== undefined) this.states.push(state);
    this.size++;
    if (this.size > this.buckets.length) this.growBuckets();
  }

  /** Doubles the bucket count, keeping chains at about one record on average. */
  private growBuckets(): void {
    const buckets = new Int32Array(this.buckets.length * 2).fill(NO_RECORD);
    const bucketMask = buckets.length - 1;
    const { records, stride } = this;
    for (let record = 0; record < this.size; record++) {
      const base = record * stride;
      const bucket = (records[base + HASH] as number) & bucketMask;
      records[base + NEXT] = buckets[bucket] as number;
      buckets[bucket] = record;
    }
    this.buckets = buckets;
    this.bucketMask = bucketMask;
  }
}
