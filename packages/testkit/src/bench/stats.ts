/**
 * Small statistics for benchmarks: latency samples with nearest-rank
 * percentiles, and the median of repetitions (the machines are noisy:
 * quote medians, not means).
 */

/** Latency samples (any unit), growing without a reallocation per sample. */
export class Samples {
  private data = new Float64Array(1 << 16);
  length = 0;

  push(value: number): void {
    if (this.length === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length] = value;
    this.length += 1;
  }

  /** Nearest-rank percentile, `p` in [0, 100]; NaN when empty. */
  percentile(p: number): number {
    if (this.length === 0) return Number.NaN;
    const sorted = this.data.slice(0, this.length).sort();
    const rank = Math.min(this.length - 1, Math.max(0, Math.ceil((p / 100) * this.length) - 1));
    return sorted[rank] as number;
  }
}

/** The median of `values`; NaN when empty. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}
