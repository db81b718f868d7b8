import { LogTimeEstimator } from "@synod/server";
import type { KvMachine } from "../kv-machine.js";
import type { KvOp } from "../ops.js";
import type { KvNode } from "./handler.js";

export interface HousekeeperOptions {
  /** How often the leader looks for due leases and compaction (default 100 ms). */
  readonly intervalMs?: number;
  /**
   * Keep this many revisions of history for reads at old revisions and
   * watches resuming from the past; the leader compacts older history
   * (etcd's `--auto-compaction-mode=revision`). 0 disables (default 100 000).
   */
  readonly retainRevisions?: number;
  /** Compact at most this often (default 5 s). */
  readonly compactEveryMs?: number;
}

export interface HousekeeperLog {
  warn(message: string, fields?: Record<string, unknown>): void;
}

/**
 * The leader's chores that must go through the log, because every replica
 * must do them at the same point:
 *
 * - **Lease expiry.** Leases expire by log time, at the first command whose
 *   time is past their expiry. When the log is idle, no command comes, so
 *   the leader proposes `expire-leases` once its estimate of log time (the
 *   last applied batch's time, plus the time since it was applied here)
 *   passes the earliest expiry. The estimate never runs ahead of the
 *   leader's log clock, so a lease never expires early; after a failover
 *   log time resumes from the old leader's last heartbeat, which extends
 *   leases by about the election's length (as etcd does), not by how long
 *   the log was idle before it.
 * - **Compaction** of history older than `retainRevisions`.
 *
 * Only the leader proposes; a follower's proposals would be refused anyway.
 */
export class Housekeeper {
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly intervalMs: number;
  private readonly retainRevisions: number;
  private readonly compactEveryMs: number;
  private readonly clock: LogTimeEstimator;
  private inFlight = false;
  private lastCompactAt = 0;

  constructor(
    private readonly node: KvNode,
    private readonly machine: KvMachine,
    private readonly log: HousekeeperLog,
    options: HousekeeperOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 100;
    this.retainRevisions = options.retainRevisions ?? 100_000;
    this.compactEveryMs = options.compactEveryMs ?? 5_000;
    this.clock = new LogTimeEstimator(node);
    this.timer = setInterval(() => this.run(), this.intervalMs);
    this.timer.unref?.();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private run(): void {
    const now = performance.now();
    const logTime = this.clock.estimate();
    if (this.inFlight || this.node.status().role !== "leader") return;
    const due = this.machine.nextLeaseExpiry;
    if (due !== undefined && due <= logTime) return this.propose({ type: "expire-leases" });
    if (this.retainRevisions > 0 && now - this.lastCompactAt >= this.compactEveryMs) {
      this.lastCompactAt = now;
      const target = this.machine.revision - this.retainRevisions;
      if (target > this.machine.status().compactRevision) this.propose({ type: "compact", revision: target });
    }
  }

  private propose(op: KvOp): void {
    this.inFlight = true;
    this.node
      .propose(op)
      .catch((error: unknown) => {
        // Leadership moved or the node stops: the next leader takes over the chore.
        const code = (error as { code?: unknown }).code;
        if (code !== "NOT_LEADER" && code !== "EPOCH_CHANGED" && code !== "STOPPED") this.log.warn("housekeeping proposal failed", { op: op.type, error: (error as Error).message });
      })
      .finally(() => {
        this.inFlight = false;
      });
  }
}
