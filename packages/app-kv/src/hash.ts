/**
 * A 64-bit, non-cryptographic hash made of two independent 32-bit lanes
 * (FNV-1a-style mixing with different primes, then murmur3's finalizer). It
 * feeds the state digest, which only has to make divergence between replicas
 * overwhelmingly likely to show, not resist an adversary.
 */
export interface Hash64 {
  readonly high: number;
  readonly low: number;
}

export const ZERO_HASH: Hash64 = Object.freeze({ high: 0, low: 0 });

/**
 * Hashes a sequence of fields. Each field is length-prefixed, so
 * `["ab", "c"]` and `["a", "bc"]` differ.
 */
export function hashFields(fields: readonly (string | number)[]): Hash64 {
  let high = 0x811c9dc5;
  let low = 0x9747b28c;
  for (const field of fields) {
    const text = typeof field === "number" ? `#${field}` : field;
    high = Math.imul(high ^ text.length, 0x01000193);
    low = Math.imul(low ^ text.length, 0x5bd1e995);
    for (let index = 0; index < text.length; index += 1) {
      const unit = text.charCodeAt(index);
      high = Math.imul(high ^ unit, 0x01000193);
      low = Math.imul(low ^ unit, 0x5bd1e995);
    }
  }
  return { high: finalize(high), low: finalize(low ^ 0x27d4eb2f) };
}

/**
 * Order-independent combination: the sum of the hashes of a set's members,
 * lane by lane, modulo 2^32. Adding then removing a member restores the sum,
 * so a set's hash is maintained in O(1) per change.
 */
export function addHash(sum: Hash64, item: Hash64): Hash64 {
  return { high: (sum.high + item.high) >>> 0, low: (sum.low + item.low) >>> 0 };
}

export function subtractHash(sum: Hash64, item: Hash64): Hash64 {
  return { high: (sum.high - item.high) >>> 0, low: (sum.low - item.low) >>> 0 };
}

/** Order-dependent combination, for a chain over a history. */
export function chainHash(chain: Hash64, item: Hash64): Hash64 {
  return {
    high: finalize(Math.imul(chain.high ^ item.high, 0x9e3779b1) ^ item.low),
    low: finalize(Math.imul(chain.low ^ item.low, 0x85ebca77) ^ item.high),
  };
}

export function hashToHex(hash: Hash64): string {
  return hash.high.toString(16).padStart(8, "0") + hash.low.toString(16).padStart(8, "0");
}

function finalize(value: number): number {
  let h = value >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
