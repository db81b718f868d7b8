/**
 * Errors of the KV store. Inside the state machine an error is *data*: a
 * result that crosses the wire and sits in core's session table, so it must
 * be plain JSON and identical on every replica (deterministic messages, no
 * stack traces). Outside it (the `eventsSince` API, clients) the same data is
 * wrapped in an `Error` subclass users can `catch` and `switch` on.
 *
 * Every message says what to do about it.
 */
export type KvError =
  /** The store is above its quota (or this put would take it there): it is read/delete-only until deletes free space. */
  | { readonly code: "QUOTA_EXCEEDED"; readonly message: string; readonly quotaBytes: number; readonly usedBytes: number; readonly requestedBytes: number }
  /** The revision asked for is older than the compaction point: that history is gone. */
  | { readonly code: "COMPACTED"; readonly message: string; readonly compactRevision: number }
  /** The revision asked for has not happened yet. */
  | { readonly code: "FUTURE_REVISION"; readonly message: string; readonly revision: number; readonly currentRevision: number }
  | { readonly code: "LEASE_NOT_FOUND"; readonly message: string; readonly lease: number }
  | { readonly code: "LEASE_EXISTS"; readonly message: string; readonly lease: number }
  /** `incr` on a value that is not a decimal integer. */
  | { readonly code: "NOT_A_NUMBER"; readonly message: string; readonly key: string }
  /** The operation, guard or query does not have the documented shape. */
  | { readonly code: "INVALID_REQUEST"; readonly message: string; readonly reason: string }
  /**
   * An earlier operation of the same command failed: the command's writes were
   * rolled back and this operation was not applied. `cause` is that failure's code.
   */
  | { readonly code: "TXN_ABORTED"; readonly message: string; readonly cause: KvErrorCode }
  // Limits checked at the client/server boundary by `validateOp` / `validateTxn`.
  | { readonly code: "KEY_TOO_LARGE"; readonly message: string; readonly bytes: number; readonly limit: number }
  | { readonly code: "VALUE_TOO_LARGE"; readonly message: string; readonly bytes: number; readonly limit: number }
  | { readonly code: "TOO_MANY_OPS"; readonly message: string; readonly count: number; readonly limit: number }
  | { readonly code: "REQUEST_TOO_LARGE"; readonly message: string; readonly bytes: number; readonly limit: number }
  /** The write carried a fencing token lower than one already seen for its fence: its lock was lost. */
  | { readonly code: "FENCED"; readonly message: string; readonly name: string; readonly token: number; readonly highestToken: number }
  /** A transaction branch writes the same key twice (etcd refuses this too: the outcome would depend on op order). */
  | { readonly code: "DUPLICATE_KEY"; readonly message: string; readonly key: string };

export type KvErrorCode = KvError["code"];

/** Builders for each error, so messages are written once and stay deterministic. */
export const kvErrors = {
  quotaExceeded(quotaBytes: number, usedBytes: number, requestedBytes: number): KvError {
    return {
      code: "QUOTA_EXCEEDED",
      message: `the store holds ${usedBytes} of its ${quotaBytes} quota bytes and refuses puts (this one needs ${requestedBytes}); delete keys or compact to free space`,
      quotaBytes,
      usedBytes,
      requestedBytes,
    };
  },
  compacted(compactRevision: number): KvError {
    return {
      code: "COMPACTED",
      message: `history before revision ${compactRevision} was compacted; read the current state and resume from revision ${compactRevision} or later`,
      compactRevision,
    };
  },
  futureRevision(revision: number, currentRevision: number): KvError {
    return {
      code: "FUTURE_REVISION",
      message: `revision ${revision} is ahead of the store's revision ${currentRevision}; retry once the store has reached it`,
      revision,
      currentRevision,
    };
  },
  leaseNotFound(lease: number): KvError {
    return { code: "LEASE_NOT_FOUND", message: `lease ${lease} does not exist or has expired; grant a new lease`, lease };
  },
  leaseExists(lease: number): KvError {
    return { code: "LEASE_EXISTS", message: `lease ${lease} already exists; choose another id`, lease };
  },
  notANumber(key: string): KvError {
    return { code: "NOT_A_NUMBER", message: `the value of ${JSON.stringify(key)} is not a decimal integer; incr only applies to decimal integers (or absent keys)`, key };
  },
  invalidRequest(reason: string): KvError {
    return { code: "INVALID_REQUEST", message: `invalid request: ${reason}`, reason };
  },
  txnAborted(cause: KvErrorCode): KvError {
    return { code: "TXN_ABORTED", message: `not applied: an earlier operation of this command failed (${cause}) and its writes were rolled back`, cause };
  },
  keyTooLarge(bytes: number, limit: number): KvError {
    return { code: "KEY_TOO_LARGE", message: `a key of ${bytes} bytes exceeds the limit of ${limit}; use shorter keys`, bytes, limit };
  },
  valueTooLarge(bytes: number, limit: number): KvError {
    return { code: "VALUE_TOO_LARGE", message: `a value of ${bytes} bytes exceeds the limit of ${limit}; split it over several keys`, bytes, limit };
  },
  tooManyOps(count: number, limit: number): KvError {
    return { code: "TOO_MANY_OPS", message: `a transaction of ${count} operations exceeds the limit of ${limit}; split it`, count, limit };
  },
  requestTooLarge(bytes: number, limit: number): KvError {
    return { code: "REQUEST_TOO_LARGE", message: `a request of about ${bytes} bytes exceeds the limit of ${limit}; split it`, bytes, limit };
  },
  fenced(name: string, token: number, highestToken: number): KvError {
    return {
      code: "FENCED",
      message: `fencing token ${token} for ${JSON.stringify(name)} is stale: ${highestToken} was seen since; the lock it came from was lost, so nothing was written`,
      name,
      token,
      highestToken,
    };
  },
  duplicateKey(key: string): KvError {
    return { code: "DUPLICATE_KEY", message: `the transaction writes ${JSON.stringify(key)} more than once; write each key at most once per branch`, key };
  },
} as const;

/** A `KvError` as a thrown `Error`, for APIs outside the state machine. */
export class KvOperationError extends Error {
  readonly code: KvErrorCode;
  constructor(readonly error: KvError) {
    super(error.message);
    this.code = error.code;
    this.name = "KvOperationError";
  }
}

/**
 * History before `compactRevision` is gone (compacted, or dropped by the event
 * log's retention): a watcher must re-read the current state and watch again
 * from `compactRevision` or later.
 */
export class CompactedError extends KvOperationError {
  constructor(readonly compactRevision: number) {
    super(kvErrors.compacted(compactRevision));
    this.name = "CompactedError";
  }
}

/** A snapshot that does not decode to a valid KV state. The current state is left untouched. */
export class SnapshotInvalidError extends Error {
  readonly code = "SNAPSHOT_INVALID";
  constructor(readonly reason: string) {
    super(`invalid KV snapshot: ${reason}; fetch the snapshot again from a healthy replica`);
    this.name = "SnapshotInvalidError";
  }
}

/** The matching `Error` for error data, so callers can `instanceof CompactedError`. */
export function toException(error: KvError): KvOperationError {
  return error.code === "COMPACTED" ? new CompactedError(error.compactRevision) : new KvOperationError(error);
}
