/**
 * What one chaos run records, in the form the report renders: every client
 * operation with its timing and outcome, every fault with its window, and
 * each replica's role over time. Times are milliseconds since the run began.
 */

/** One client operation as the report sees it. */
export interface OperationRecord {
  /** Which workload issued it (`register`, `bank`, `lock`...). */
  readonly workload: string;
  /** The operation's kind (`read`, `write`, `cas`, `transfer`, `acquire`...). */
  readonly kind: string;
  readonly start: number;
  /** When its answer came; undefined when none came (its outcome is unknown). */
  readonly end: number | undefined;
  /** `ok`: it took effect (or a read answered); `fail`: it certainly did not; `unknown`: it may have. */
  readonly outcome: "ok" | "fail" | "unknown";
  /** Why it failed or has no answer: the error's code (or its name). */
  readonly error?: string;
  /** Not a call to the cluster (a write to a resource beside it, say): it says nothing of the cluster's progress. */
  readonly local?: boolean;
}

/** A fault the nemesis held from `start` to `end`. */
export interface FaultWindow {
  /** `kill`, `pause`, `partition`, `bitflip`, `torn-tail`, `wipe`, `membership`... */
  readonly kind: string;
  /** The replicas (or links) it struck, as a person reads them: `n2`, `n1|n2,n3`... */
  readonly target: string;
  readonly start: number;
  readonly end: number;
}

/** A replica's role from `start` until its next sample (or the end of the run). */
export interface RoleSample {
  readonly node: string;
  readonly time: number;
  /** `leader`, `follower`, `candidate`, `rebuilding`, `down`, `paused`... */
  readonly role: string;
}

/** One check and its verdict. */
export interface CheckResult {
  readonly name: string;
  readonly passed: boolean;
  /** What it found, in a line or two; for a failed linearizability check, the shortest failing part of the history. */
  readonly detail: string;
}

export interface RunRecord {
  readonly seed: number;
  /** The service and cluster: `app-kv, 3 replicas`. */
  readonly system: string;
  readonly durationMs: number;
  readonly operations: readonly OperationRecord[];
  readonly faults: readonly FaultWindow[];
  readonly roles: readonly RoleSample[];
  readonly checks: readonly CheckResult[];
  /** How to run it again: the command line with its seed. */
  readonly replay: string;
}
