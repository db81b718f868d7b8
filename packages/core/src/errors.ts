import type { NodeId } from "./ballot.js";

/**
 * Errors a user can act on. Each has a stable `code` (for the wire and for
 * `switch`es) and a message that says what to do.
 */
export abstract class SynodError extends Error {
  abstract readonly code: string;
  /** True when retrying the same request (same session and sequence number) is safe and may succeed. */
  abstract readonly retryable: boolean;
}

/** This replica is not the leader; send the request to `leaderHint` if known. */
export class NotLeaderError extends SynodError {
  readonly code = "NOT_LEADER";
  readonly retryable = true;
  constructor(readonly leaderHint: NodeId | undefined) {
    super(
      leaderHint === undefined
        ? "this replica is not the leader and knows no leader yet; retry after an election"
        : `this replica is not the leader; retry on ${leaderHint}`,
    );
  }
}

/**
 * Mastership was lost, or lost and regained, while the request was in flight
 * (Paxos Made Live §5.3): it may or may not be chosen. Retry with the same
 * session and sequence number; exactly-once sessions return the original
 * result if it was applied.
 */
export class EpochChangedError extends SynodError {
  readonly code = "EPOCH_CHANGED";
  readonly retryable = true;
  constructor(readonly leaderHint: NodeId | undefined) {
    super("leadership changed while the request was in flight; retry it with the same session and sequence number");
  }
}

/** The session expired or was never opened; open a new session. */
export class SessionExpiredError extends SynodError {
  readonly code = "SESSION_EXPIRED";
  readonly retryable = false;
  constructor(readonly session: string) {
    super(`session ${session} is unknown or expired; open a new session and retry the request in it`);
  }
}

/**
 * The request's sequence number is below the session's last one: its result
 * was already replaced by a later request's. Clients send one request at a
 * time per session.
 */
export class StaleSequenceError extends SynodError {
  readonly code = "STALE_SEQUENCE";
  readonly retryable = false;
  constructor(
    readonly session: string,
    readonly seq: number,
    readonly lastSeq: number,
  ) {
    super(`request ${seq} of session ${session} is older than its last request ${lastSeq}; its result is gone`);
  }
}

/** The replica is stopping or stopped. */
export class StoppedError extends SynodError {
  readonly code = "STOPPED";
  readonly retryable = true;
  constructor(reason = "the replica is stopped") {
    super(reason);
  }
}

/** The replica is too busy to take more requests; back off and retry. */
export class OverloadedError extends SynodError {
  readonly code = "OVERLOADED";
  readonly retryable = true;
  constructor(detail: string) {
    super(`the replica is overloaded (${detail}); back off and retry`);
  }
}

/** Input that crossed a boundary (wire, disk, configuration) was malformed. */
export class InvalidInputError extends SynodError {
  readonly code = "INVALID_INPUT";
  readonly retryable = false;
  constructor(
    readonly where: string,
    readonly reason: string,
  ) {
    super(`invalid ${where}: ${reason}`);
  }
}

/**
 * A configuration change was refused. `CONFIG_CHANGED`: it expected another
 * configuration than the one chosen last (`currentId`): read the
 * configuration again and decide anew. `CHANGE_IN_PROGRESS`: another change
 * is being decided; wait for it. `INVALID_CONFIG` and `NOT_A_VOTER`: the
 * request itself is wrong.
 */
export class ConfigChangeError extends SynodError {
  readonly retryable = false;
  constructor(
    readonly code: "CONFIG_CHANGED" | "CHANGE_IN_PROGRESS" | "INVALID_CONFIG" | "NOT_A_VOTER",
    detail: string,
    readonly currentId?: number,
  ) {
    super(`configuration change refused (${code}): ${detail}`);
  }
}

/** A broken internal invariant: a bug, never bad input. The replica must stop. */
export class InvariantError extends Error {
  constructor(message: string) {
    super(`invariant violated: ${message}`);
    this.name = "InvariantError";
  }
}

export function invariant(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new InvariantError(typeof message === "string" ? message : message());
}

/** Plain data for a client reply: what crosses the wire in place of an `Error`. */
export interface ErrorReply {
  readonly code: string;
  readonly message: string;
  readonly leaderHint?: NodeId;
}
