/**
 * Hashing helpers for the memo of the search.
 *
 * The set of linearized operations is hashed with Zobrist hashing: every
 * operation gets a fixed random number and the hash of a set is the XOR of
 * its members' numbers. Adding or removing an operation is then one XOR, so
 * the search never rehashes the whole bitset on each step.
 */

/**
 * Deterministic 32-bit pseudo-random generator (SplitMix32). Determinism keeps
 * runs reproducible; the quality is ample for hashing.
 */
export function createRandomWords(seed: number): () => number {
  let counter = seed >>> 0;
  return () => {
    counter = (counter + 0x9e3779b9) | 0;
    let mixed = counter;
    mixed = Math.imul(mixed ^ (mixed >>> 16), 0x85ebca6b);
    mixed = Math.imul(mixed ^ (mixed >>> 13), 0xc2b2ae35);
    return (mixed ^ (mixed >>> 16)) >>> 0;
  };
}

/** One random 32-bit word per operation. */
export function createZobristTable(operationCount: number, seed = 0x5eed): Int32Array {
  const next = createRandomWords(seed);
  const table = new Int32Array(operationCount);
  for (let index = 0; index < operationCount; index++) table[index] = next() | 0;
  return table;
}

/** Spreads a small integer (an interned state id) over all 32 bits, to combine it with a set hash by XOR. */
export function mixStateId(stateId: number): number {
  let mixed = Math.imul(stateId + 1, 0x9e3779b1);
  mixed ^= mixed >>> 15;
  return Math.imul(mixed, 0x85ebca6b);
}
