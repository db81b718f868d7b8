import type { NodeId } from "./ballot.js";
import type { Clock } from "./clock.js";

/**
 * The master lease as one acceptor grants it (Paxos Made Live §5.2): having
 * answered a leader's heartbeat, it refuses every other prepare for
 * `leaseMs` of its own clock. After a restart it cannot know whom it granted
 * one to, so it refuses everyone for a lease's length.
 */
export class GrantedLease {
  private until = Number.NEGATIVE_INFINITY;
  /** Undefined: granted to no one in particular (after a restart), so binding for everyone. */
  private to: NodeId | undefined;

  constructor(
    private readonly leaseMs: number,
    private readonly clock: Clock,
    /** False only for the planted bug `lease-not-honoured`. */
    private readonly honoured = true,
  ) {}

  /** Grants the lease to `holder` from now. */
  grant(holder: NodeId): void {
    if (this.leaseMs <= 0) return;
    this.to = holder;
    this.until = this.clock.now() + this.leaseMs;
  }

  /** A restarted acceptor may have granted a lease it forgot: it binds itself towards everyone. */
  grantToAnyone(): void {
    if (this.leaseMs <= 0) return;
    this.to = undefined;
    this.until = this.clock.now() + this.leaseMs;
  }

  /** True while the lease, granted to another than `candidate`, has not run out. */
  refuses(candidate: NodeId): boolean {
    return this.leaseMs > 0 && this.honoured && candidate !== this.to && this.clock.now() < this.until;
  }
}
