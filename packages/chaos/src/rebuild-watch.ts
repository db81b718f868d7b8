/** A replica that finished rebuilding is taken as rebuilding this much longer by faults that would need it trusted. */
export const REBUILD_SETTLE_MS = 2_000;

/**
 * Which replicas may rebuild when they next start, from the faults and the
 * sampled roles: one whose disk a fault damaged, or that was seen
 * rebuilding, until it has been seen serving for `REBUILD_SETTLE_MS` (a
 * replica says it finished as soon as it knows; the end of its rebuilding
 * mark reaches its disk with its next write, and a power cut before then
 * brings it back rebuilding).
 */
export class RebuildWatch {
  private readonly suspects = new Set<string>();
  private readonly finishedAt = new Map<string, number>();

  constructor(private readonly clock: () => number) {}

  /** A fault damaged `id`'s disk while it was down. */
  damaged(id: string): void {
    this.suspects.add(id);
  }

  /** A sampled role of `id` (every sample, not only changes: a down period the sampler missed must not leave a suspect forever). */
  note(id: string, role: string): void {
    const now = this.clock();
    if (role === "rebuilding") this.suspects.add(id);
    else if (role === "down" || role === "unreachable") {
      // Gone again before it had served long enough: its end of rebuild may still not be on its disk.
      const finished = this.finishedAt.get(id);
      if (finished !== undefined && now - finished < REBUILD_SETTLE_MS) this.suspects.add(id);
    } else if (role !== "paused" && this.suspects.delete(id)) this.finishedAt.set(id, now);
  }

  mayBeRebuilding(): boolean {
    const now = this.clock();
    return this.suspects.size > 0 || [...this.finishedAt.values()].some((at) => now - at < REBUILD_SETTLE_MS);
  }
}
