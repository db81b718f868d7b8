/**
 * Gray failures a leader watches in itself: work that still completes, but
 * too slowly to lead. Each watch keeps the durations of the last few pieces
 * of one kind of work and judges their median, so one slow write or one
 * long apply is a hiccup, not a failing replica.
 */
export class SlowWatch {
  private durations: number[] = [];

  constructor(
    /** Milliseconds at or above which the median counts as slow (0 disables the watch). */
    readonly limitMs: number,
    private readonly window = 8,
  ) {}

  note(ms: number): void {
    this.durations.push(ms);
    if (this.durations.length > this.window) this.durations.shift();
  }

  /** The median of a full window when it is at or above the limit (and forgets the window), else undefined. */
  takeSlow(): number | undefined {
    if (this.limitMs <= 0 || this.durations.length < this.window) return undefined;
    const median = [...this.durations].sort((x, y) => x - y)[Math.floor(this.window / 2)] as number;
    if (median < this.limitMs) return undefined;
    this.durations = [];
    return median;
  }

  clear(): void {
    this.durations = [];
  }
}
