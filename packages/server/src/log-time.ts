/**
 * The leader's estimate of log time now, for proposing what log time makes
 * due (lease and session expiry, lock-delays): the last applied batch's log
 * time plus the local time since this replica saw it change. It never runs
 * ahead of the leader's log clock (which is at least that batch's time plus
 * the time since), so whatever is proposed on it is never early.
 */
export class LogTimeEstimator {
  private seen = -1;
  private seenAt = 0;

  constructor(
    private readonly logTime: () => number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  estimate(): number {
    const logTime = this.logTime();
    const now = this.now();
    if (logTime !== this.seen) {
      this.seen = logTime;
      this.seenAt = now;
    }
    return logTime + (now - this.seenAt);
  }
}
