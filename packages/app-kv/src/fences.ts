import { type Hash64, ZERO_HASH, addHash, hashFields, subtractHash } from "./hash.js";
import type { Journal } from "./journal.js";

/**
 * Fencing: for each fence name (a lock's name), the highest token any write
 * carried. A write whose token is lower than that is refused, inside the
 * state machine, so a holder that lost its lock while paused cannot
 * overwrite its successor's work ("reject any token lower than the highest
 * seen"). Tokens come from the lock service (`@synod/app-lock`).
 */
export class FenceTable {
  private readonly highest = new Map<string, number>();
  private sum: Hash64 = ZERO_HASH;

  constructor(private readonly journal: Journal) {}

  /** An order-independent hash of every fence, for the digest. */
  get hash(): Hash64 {
    return this.sum;
  }

  /** The highest token seen for `name` (0 for none). */
  get(name: string): number {
    return this.highest.get(name) ?? 0;
  }

  /** Records `token` for `name` if it is the highest yet; returns false (and changes nothing) if it is lower. */
  admit(name: string, token: number): boolean {
    const current = this.highest.get(name);
    if (current !== undefined && token < current) return false;
    if (current === token) return true;
    this.set(name, token);
    this.journal.record(() => (current === undefined ? this.remove(name) : this.set(name, current)));
    return true;
  }

  /** Every fence, ordered by name. */
  list(): [string, number][] {
    return [...this.highest.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  load(fences: readonly (readonly [string, number])[]): void {
    this.highest.clear();
    this.sum = ZERO_HASH;
    for (const [name, token] of fences) this.set(name, token);
  }

  private set(name: string, token: number): void {
    const current = this.highest.get(name);
    if (current !== undefined) this.sum = subtractHash(this.sum, hashFields(["fence", name, current]));
    this.highest.set(name, token);
    this.sum = addHash(this.sum, hashFields(["fence", name, token]));
  }

  private remove(name: string): void {
    const current = this.highest.get(name);
    if (current === undefined) return;
    this.sum = subtractHash(this.sum, hashFields(["fence", name, current]));
    this.highest.delete(name);
  }
}
