/**
 * Fencing for a resource outside Synod (a file, a database, an API): keep
 * one `FenceGuard` beside the resource and pass every request's lock token
 * through `admit` before acting on it. A token lower than the highest seen
 * comes from a holder that lost its lock (it was paused, cut off, or slow)
 * and is refused, so it cannot overwrite its successor's work.
 *
 * The guard's memory must be as durable as the resource: persist `highest`
 * with the data it protects (or use a fenced KV write, which does this in
 * the replicated log).
 */
export class FenceGuard {
  private readonly highest = new Map<string, number>();

  /** Admits `token` for lock `name` when it is at least the highest seen, and remembers it. */
  admit(name: string, token: number): boolean {
    const seen = this.highest.get(name) ?? 0;
    if (token < seen) return false;
    this.highest.set(name, token);
    return true;
  }

  /** The highest token seen for `name` (0 for none). */
  highestToken(name: string): number {
    return this.highest.get(name) ?? 0;
  }

  /** Restores what was persisted. */
  load(entries: Iterable<readonly [string, number]>): void {
    for (const [name, token] of entries) if (token > (this.highest.get(name) ?? 0)) this.highest.set(name, token);
  }

  /** What to persist with the resource. */
  entries(): [string, number][] {
    return [...this.highest.entries()];
  }
}
