/**
 * Errors of the lock service. Inside the state machine an error is data: a
 * deterministic, plain-JSON result (a throw would stop the replica). Each
 * message says what to do about it.
 */
export type LockError =
  | { readonly code: "SESSION_NOT_FOUND"; readonly message: string; readonly session: string }
  | { readonly code: "SESSION_EXISTS"; readonly message: string; readonly session: string }
  /** The request named a session with the wrong secret. */
  | { readonly code: "SESSION_AUTH_FAILED"; readonly message: string; readonly session: string }
  | { readonly code: "TTL_TOO_SHORT"; readonly message: string; readonly ttlMs: number; readonly minimumMs: number }
  /** The lock exists with another kind (mutex vs semaphore, or another permit count). */
  | { readonly code: "LOCK_KIND_MISMATCH"; readonly message: string; readonly lock: string; readonly limit: number | null }
  /** The session already holds or waits for this lock. */
  | { readonly code: "ALREADY_HOLDING"; readonly message: string; readonly lock: string }
  | { readonly code: "ALREADY_WAITING"; readonly message: string; readonly lock: string }
  | { readonly code: "INVALID_REQUEST"; readonly message: string; readonly reason: string };

export type LockErrorCode = LockError["code"];

export const lockErrors = {
  sessionNotFound(session: string): LockError {
    return { code: "SESSION_NOT_FOUND", message: `session ${session} does not exist or has expired; open a new session`, session };
  },
  sessionExists(session: string): LockError {
    return { code: "SESSION_EXISTS", message: `session ${session} already exists; choose another id`, session };
  },
  sessionAuthFailed(session: string): LockError {
    return { code: "SESSION_AUTH_FAILED", message: `wrong secret for session ${session}; only the client that opened a session may act in its name`, session };
  },
  ttlTooShort(ttlMs: number, minimumMs: number): LockError {
    return {
      code: "TTL_TOO_SHORT",
      message: `a session TTL of ${ttlMs} ms is below the minimum of ${minimumMs} ms (1.5× the election timeout): a leader change alone could expire it; ask for at least ${minimumMs} ms`,
      ttlMs,
      minimumMs,
    };
  },
  kindMismatch(lock: string, limit: number | undefined): LockError {
    const kind = limit === undefined ? "a mutex" : `a semaphore of ${limit} permits`;
    return { code: "LOCK_KIND_MISMATCH", message: `lock ${JSON.stringify(lock)} is ${kind}; acquire it as such`, lock, limit: limit ?? null };
  },
  alreadyHolding(lock: string): LockError {
    return { code: "ALREADY_HOLDING", message: `this session already holds ${JSON.stringify(lock)}; release it first`, lock };
  },
  alreadyWaiting(lock: string): LockError {
    return { code: "ALREADY_WAITING", message: `this session is already waiting for ${JSON.stringify(lock)}; cancel that wait first`, lock };
  },
  invalidRequest(reason: string): LockError {
    return { code: "INVALID_REQUEST", message: `invalid request: ${reason}`, reason };
  },
} as const;

/** A `LockError` as a thrown `Error`, for APIs outside the state machine. */
export class LockOperationError extends Error {
  readonly code: LockErrorCode;
  constructor(readonly error: LockError) {
    super(error.message);
    this.code = error.code;
    this.name = "LockOperationError";
  }
}
