import type { LockError } from "./errors.js";

/*
 * The lock service's vocabulary: operations (applied through the log),
 * queries (read from the applied state), their results and the events
 * watchers see. Plain JSON: it crosses the wire and sits in the log.
 *
 * Time is *log time* (milliseconds, the leader's clock as stamped on each
 * batch, never decreasing along the log): session deadlines and lock-delays
 * are decided by it, the same on every replica.
 */

// ---------------------------------------------------------------- sessions

/**
 * Opens a session: the liveness of a client. Locks and waits belong to a
 * session and end with it. The id is the client's choice (so a retried open
 * is the same open); `secretHash` lets the client resume the session on
 * another replica (the server checks the secret, the log keeps its hash).
 */
export interface OpenSessionOp {
  readonly type: "open-session";
  readonly id: string;
  readonly ttlMs: number;
  readonly secretHash: string;
}

/**
 * The leader's batched renewal: each session named is extended to `ttlMs`
 * after this entry's log time. Keepalives are answered by the leader from
 * memory; only this one entry per renewal period reaches the log.
 */
export interface RenewSessionsOp {
  readonly type: "renew-sessions";
  readonly ids: readonly string[];
}

/** Ends a session: its locks are released (voluntarily) and its waits withdrawn. */
export interface CloseSessionOp {
  readonly type: "close-session";
  readonly id: string;
  /** Must match the session's: only its owner acts in its name. */
  readonly secretHash: string;
}

/** Lets log time act on an idle log: due sessions expire, lock-delays end, waiters are granted. */
export interface TickOp {
  readonly type: "tick";
}

// ---------------------------------------------------------------- locks

/**
 * How a holder holds a lock. A lock is a mutex (exclusive or shared holders,
 * a readers-writer lock) unless it was created as a semaphore with `limit`
 * permits (then every holder takes one permit, whatever the mode).
 */
export type LockMode = "exclusive" | "shared";

export interface AcquireOp {
  readonly type: "acquire";
  readonly session: string;
  /** Must match the session's: only its owner acts in its name. */
  readonly secretHash: string;
  readonly lock: string;
  readonly mode: LockMode;
  /** Create (or expect) a semaphore with this many permits. Absent: a mutex. */
  readonly limit?: number;
  /** Queue behind the current holders (FIFO) instead of failing when the lock is taken. */
  readonly wait: boolean;
  /**
   * Chubby's lock-delay, for this lock from now on: after an *involuntary*
   * release (the holder's session expired, or an operator forced it), nobody
   * gets the lock for this long, so that a holder cut off mid-write cannot
   * race its successor. Capped at `MAX_LOCK_DELAY_MS`. A voluntary release
   * hands over at once.
   */
  readonly lockDelayMs?: number;
}

export interface ReleaseOp {
  readonly type: "release";
  readonly session: string;
  /** Must match the session's: only its owner acts in its name. */
  readonly secretHash: string;
  readonly lock: string;
}

/** Withdraws a waiting acquire: the waiter leaves the queue in this entry. */
export interface CancelOp {
  readonly type: "cancel";
  readonly session: string;
  /** Must match the session's: only its owner acts in its name. */
  readonly secretHash: string;
  readonly lock: string;
}

/** An operator's release of every holder of a lock (or of one session's hold), recorded as an audit event. */
export interface ForceReleaseOp {
  readonly type: "force-release";
  readonly lock: string;
  /** Only this session's hold; absent: every holder. */
  readonly session?: string;
  readonly reason: string;
}

export type LockOp = OpenSessionOp | RenewSessionsOp | CloseSessionOp | TickOp | AcquireOp | ReleaseOp | CancelOp | ForceReleaseOp;

// ---------------------------------------------------------------- queries

export interface SessionsQuery {
  readonly type: "sessions";
}
export interface SessionQuery {
  readonly type: "session";
  readonly id: string;
}
export interface LocksQuery {
  readonly type: "locks";
  /** Only locks whose name starts with this. */
  readonly prefix?: string;
}
export interface LockQuery {
  readonly type: "lock";
  readonly lock: string;
}
/** Chubby's CheckSequencer: is `token` the current grant of `lock` to a live holder? */
export interface CheckTokenQuery {
  readonly type: "check-token";
  readonly lock: string;
  readonly token: number;
}
/** Events with index ≥ `from`, oldest first (at most `limit`). */
export interface EventsQuery {
  readonly type: "events";
  readonly from: number;
  readonly limit?: number;
}

export type LockQueryOp = SessionsQuery | SessionQuery | LocksQuery | LockQuery | CheckTokenQuery | EventsQuery;

// ---------------------------------------------------------------- state as reported

export interface SessionInfo {
  readonly id: string;
  readonly ttlMs: number;
  /** Log time at which the session expires unless renewed. */
  readonly deadline: number;
  /** Locks held, by name (ordered). */
  readonly holds: readonly string[];
  /** Locks waited for, by name (ordered). */
  readonly waits: readonly string[];
}

export interface Holder {
  readonly session: string;
  readonly mode: LockMode;
  /** The fencing token of this grant. */
  readonly token: number;
  /** Log time of the grant. */
  readonly since: number;
}

export interface Waiter {
  readonly session: string;
  readonly mode: LockMode;
  /** Log time the waiter queued. */
  readonly since: number;
}

export interface LockInfo {
  readonly name: string;
  /** Permits for a semaphore; absent for a mutex. */
  readonly limit?: number;
  readonly holders: readonly Holder[];
  /** FIFO: the head is granted first. */
  readonly waiters: readonly Waiter[];
  readonly lockDelayMs: number;
  /** No grant before this log time (a lock-delay running); 0 when none. */
  readonly delayedUntil: number;
  /** The highest token ever granted on this lock (0 never): fencing rejects anything lower. */
  readonly highestToken: number;
}

// ---------------------------------------------------------------- events

/** Why a hold ended. */
export type ReleaseReason = "released" | "session-closed" | "session-expired" | "forced";

/** What watchers of locks see, numbered by `index` (one increasing sequence for the whole service). */
export type LockEvent =
  | { readonly index: number; readonly time: number; readonly type: "acquired"; readonly lock: string; readonly session: string; readonly mode: LockMode; readonly token: number }
  | { readonly index: number; readonly time: number; readonly type: "released"; readonly lock: string; readonly session: string; readonly token: number; readonly reason: ReleaseReason; readonly note?: string }
  | { readonly index: number; readonly time: number; readonly type: "queued"; readonly lock: string; readonly session: string; readonly mode: LockMode; readonly queueLength: number }
  /** A waiter left the queue without the lock: cancelled, or its session ended. */
  | { readonly index: number; readonly time: number; readonly type: "dequeued"; readonly lock: string; readonly session: string; readonly reason: "cancelled" | "session-closed" | "session-expired"; readonly queueLength: number }
  | { readonly index: number; readonly time: number; readonly type: "session-opened"; readonly session: string; readonly deadline: number }
  | { readonly index: number; readonly time: number; readonly type: "session-ended"; readonly session: string; readonly reason: "closed" | "expired" };

// ---------------------------------------------------------------- results

export interface SessionResult {
  readonly type: "session";
  readonly id: string;
  readonly ttlMs: number;
  readonly deadline: number;
}

export interface RenewResult {
  readonly type: "renewed";
  /** The sessions renewed (those named that were still live), and their new deadline. */
  readonly renewed: number;
  readonly deadline: number;
}

/** The acquire was granted in this entry. */
export interface GrantedResult {
  readonly type: "granted";
  readonly lock: string;
  readonly token: number;
}

/** The acquirer is queued (FIFO); its grant will come in a later entry, as an `acquired` event. */
export interface QueuedResult {
  readonly type: "queued";
  readonly lock: string;
  /** 1 is the head. */
  readonly position: number;
}

/** A try-acquire (`wait: false`) of a lock that is taken (or has waiters ahead, or a lock-delay running). */
export interface BusyResult {
  readonly type: "busy";
  readonly lock: string;
  readonly holders: readonly Holder[];
  /** A lock-delay keeps the lock free until this log time; 0 when none. */
  readonly delayedUntil: number;
}

export interface ReleasedResult {
  readonly type: "released";
  readonly lock: string;
  /** Whether the session held the lock (a repeated release is a no-op). */
  readonly held: boolean;
}

export interface CancelledResult {
  readonly type: "cancelled";
  readonly lock: string;
  /** Whether the session was waiting. */
  readonly waiting: boolean;
}

export interface ClosedResult {
  readonly type: "closed";
  readonly id: string;
  readonly existed: boolean;
}

export interface TickResult {
  readonly type: "tick";
}

export interface ForcedResult {
  readonly type: "forced";
  readonly lock: string;
  /** The tokens of the holds ended: never granted again. */
  readonly tokens: readonly number[];
}

export interface ErrorResult {
  readonly type: "error";
  readonly error: LockError;
}

export type LockResult =
  | SessionResult
  | RenewResult
  | GrantedResult
  | QueuedResult
  | BusyResult
  | ReleasedResult
  | CancelledResult
  | ClosedResult
  | TickResult
  | ForcedResult
  | ErrorResult;

export type LockQueryResult =
  | { readonly type: "sessions"; readonly sessions: readonly SessionInfo[] }
  | ({ readonly type: "session" } & SessionInfo)
  | { readonly type: "locks"; readonly locks: readonly LockInfo[] }
  /** `nextEvent`: the index of the first event after this read (watch from it to follow on without a gap). */
  | ({ readonly type: "lock"; readonly nextEvent: number } & LockInfo)
  | { readonly type: "check-token"; readonly valid: boolean; readonly highestToken: number; readonly reason?: string }
  | { readonly type: "events"; readonly next: number; readonly events: readonly LockEvent[] }
  | ErrorResult;
