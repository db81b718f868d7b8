import type { SynodNode } from "@synod/core";
import { LogTimeEstimator } from "@synod/server";
import { type LockError, lockErrors } from "../errors.js";
import type { LockMachine } from "../lock-machine.js";
import type { LockOp, LockQueryOp, LockQueryResult, LockResult } from "../ops.js";

export type LockNode = SynodNode<LockOp, never, LockResult, LockQueryOp, LockQueryResult>;

export interface KeeperOptions {
  /** How often the leader looks for due work (default 25 ms). */
  readonly intervalMs?: number;
  /** How often the leader writes one `renew-sessions` entry for every session kept alive since the last (default 250 ms). */
  readonly renewEveryMs?: number;
  /** Test-only: known bugs planted in the keeper (`LOCK_PLANTED_BUGS`), so a fault campaign can show it catches them. */
  readonly bugs?: ReadonlySet<LockPlantedBug>;
}

/** Bugs a test can plant in the lock service (the servers' test-only `--plant-app-bug`). */
export const LOCK_PLANTED_BUGS = [
  /**
   * A keepalive is answered with the session's whole TTL, as if the renewal
   * were already in the log: a leader that was deposed without knowing it
   * keeps its clients sure of their locks after the new leader expired them.
   */
  "keepalive-full-ttl",
] as const;
export type LockPlantedBug = (typeof LOCK_PLANTED_BUGS)[number];

export type KeepaliveAnswer =
  | { readonly ok: true; readonly ttlMs: number; readonly remainingMs: number }
  | { readonly ok: false; readonly error: LockError | { readonly code: "NOT_LEADER"; readonly message: string; readonly leaderHint?: string } };

/**
 * The leader's side of sessions. A keepalive is answered from memory, with
 * the time left on the session's *logged* deadline by the leader's log
 * clock (never more than the log would give a new leader), and noted; one
 * `renew-sessions` entry per `renewEveryMs` extends every session noted
 * since the last. When log time makes something due on an idle log (a
 * session's deadline, the end of a lock-delay), the leader proposes a `tick`
 * so that it happens.
 *
 * A new leader starts from the deadlines in the log and from the log clock
 * its predecessor's heartbeats carried (core keeps it between batches): a
 * session that stopped keeping alive expires at most its remaining TTL plus
 * the election's length after the last renewal, however idle the log was.
 */
export class SessionKeeper {
  private readonly clock: LogTimeEstimator;
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly renewEveryMs: number;
  private noted = new Set<string>();
  private lastRenewAt = 0;
  private inFlight = false;
  private readonly bugs: ReadonlySet<LockPlantedBug>;

  constructor(
    private readonly node: LockNode,
    private readonly machine: LockMachine,
    private readonly log: { warn(message: string, fields?: Record<string, unknown>): void },
    options: KeeperOptions = {},
  ) {
    this.clock = new LogTimeEstimator(node);
    this.renewEveryMs = options.renewEveryMs ?? 250;
    this.bugs = options.bugs ?? new Set();
    this.timer = setInterval(() => this.run(), options.intervalMs ?? 25);
    this.timer.unref?.();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Answers a keepalive on the leader: the session's TTL and the time left on its logged deadline. */
  keepalive(id: string, secretHash: string): KeepaliveAnswer {
    const status = this.node.status();
    if (status.role !== "leader") {
      return { ok: false, error: { code: "NOT_LEADER", message: "keepalives go to the leader", ...(status.leader === undefined ? {} : { leaderHint: status.leader }) } };
    }
    const session = this.machine.session(id);
    if (session === undefined) return { ok: false, error: lockErrors.sessionNotFound(id) };
    if (session.secretHash !== secretHash) return { ok: false, error: lockErrors.sessionAuthFailed(id) };
    this.noted.add(id);
    if (this.bugs.has("keepalive-full-ttl")) return { ok: true, ttlMs: session.ttlMs, remainingMs: session.ttlMs };
    return { ok: true, ttlMs: session.ttlMs, remainingMs: Math.max(0, session.deadline - this.clock.estimate()) };
  }

  private run(): void {
    const logTime = this.clock.estimate();
    const now = performance.now();
    if (this.inFlight || this.node.status().role !== "leader") return;
    if (this.noted.size > 0 && now - this.lastRenewAt >= this.renewEveryMs) {
      this.lastRenewAt = now;
      const ids = [...this.noted].sort();
      this.noted = new Set();
      return this.propose({ type: "renew-sessions", ids });
    }
    const deadline = this.machine.nextDeadline;
    const delayEnd = this.machine.nextDelayEnd;
    if ((deadline !== undefined && deadline <= logTime) || (delayEnd !== undefined && delayEnd <= logTime)) this.propose({ type: "tick" });
  }

  private propose(op: LockOp): void {
    this.inFlight = true;
    this.node
      .propose(op)
      .catch((error: unknown) => {
        const code = (error as { code?: unknown }).code;
        if (code !== "NOT_LEADER" && code !== "EPOCH_CHANGED" && code !== "STOPPED") this.log.warn("lock housekeeping proposal failed", { op: op.type, error: (error as Error).message });
      })
      .finally(() => {
        this.inFlight = false;
      });
  }
}
