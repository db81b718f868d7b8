/** What a `LogTimeEstimator` reads: a `SynodNode`'s two views of log time. */
export interface LogTimeSource {
  /** The log time of the last batch applied. */
  readonly logTime: number;
  /** While the replica leads, its log clock now (see `SynodNode.leaderLogTime`). */
  readonly leaderLogTime: number | undefined;
}

/**
 * Log time now, as a replica can tell, for proposing what log time makes
 * due (lease and session expiry, lock-delays) and for telling a client how
 * long its session has left. On a leader it is the leader's own log clock:
 * the time its next batch carries, so whatever is proposed on it is due
 * when applied, and a successor's clock continues from it, so the time left
 * it gives is never more than a new leader would give. Elsewhere, the last
 * applied batch's log time plus the local time since this estimator saw it
 * change (never ahead of the leader's clock; behind it by as long as this
 * replica went without looking).
 */
export class LogTimeEstimator {
  private seen = -1;
  private seenAt = 0;

  constructor(
    private readonly source: LogTimeSource,
    private readonly now: () => number = () => performance.now(),
  ) {}

  estimate(): number {
    const leading = this.source.leaderLogTime;
    if (leading !== undefined) return leading;
    const logTime = this.source.logTime;
    const now = this.now();
    if (logTime !== this.seen) {
      this.seen = logTime;
      this.seenAt = now;
    }
    return logTime + (now - this.seenAt);
  }
}
