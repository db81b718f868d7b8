/**
 * The replica's only source of randomness (election timeouts). Injected so a
 * seeded simulation replays exactly.
 */
export interface Random {
  /** A uniformly distributed integer in `[0, bound)`. */
  integer(bound: number): number;
}

/**
 * xoshiro128** seeded through splitmix32: small, fast, and good enough for
 * timeouts and fault schedules. Not for cryptography.
 */
export class SeededRandom implements Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let state = seed >>> 0;
    const next = (): number => {
      state = (state + 0x9e3779b9) >>> 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
  }

  /** A uniformly distributed 32-bit unsigned integer. */
  next32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.b << 9) >>> 0;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** A float in `[0, 1)`. */
  float(): number {
    return this.next32() / 4294967296;
  }

  integer(bound: number): number {
    if (!(bound > 0)) throw new RangeError(`integer bound must be positive, got ${bound}`);
    return Math.floor(this.float() * bound);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return p > 0 && this.float() < p;
  }

  /** A new generator whose stream depends only on this one's next output. */
  fork(): SeededRandom {
    return new SeededRandom(this.next32());
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
