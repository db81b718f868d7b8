/**
 * Errors of the file storage. Corruption carries the file and byte offset so
 * an operator (and the replica's rebuild, Paxos Made Live §5.1) knows what was
 * lost; nothing damaged is ever believed.
 */
export class StorageCorruptionError extends Error {
  readonly code: string = "STORAGE_CORRUPT";
  constructor(
    readonly file: string,
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`storage corruption in ${file} at byte ${offset}: ${reason}; this replica must not vote until it is rebuilt from its peers`);
    this.name = "StorageCorruptionError";
  }
}

/**
 * The data directory is empty, though this replica was a member (the caller
 * said it expected existing data): its promises are forgotten, so it must
 * rejoin as a non-voting member and re-learn.
 */
export class StorageWipedError extends StorageCorruptionError {
  override readonly code = "STORAGE_WIPED";
  constructor(directory: string) {
    super(directory, 0, "the data directory is empty although this replica was a member");
    this.name = "StorageWipedError";
  }
}

/** The directory belongs to another replica. */
export class StorageIdentityError extends Error {
  readonly code = "STORAGE_IDENTITY";
  constructor(
    readonly directory: string,
    readonly expected: string,
    readonly found: string,
  ) {
    super(`data directory ${directory} belongs to replica ${found}, not ${expected}; point each replica at its own directory`);
    this.name = "StorageIdentityError";
  }
}

/**
 * A write or fsync failed. The storage stops accepting writes: after a failed
 * fsync the kernel may have dropped dirty pages, so retrying could report
 * durable what is not (the "fsyncgate" lesson). Restart the process.
 */
export class StorageFailedError extends Error {
  readonly code = "STORAGE_FAILED";
  constructor(override readonly cause: unknown) {
    super(`storage write failed (${cause instanceof Error ? cause.message : String(cause)}); restart the replica: it recovers from what is on disk`);
    this.name = "StorageFailedError";
  }
}

export class StorageClosedError extends Error {
  readonly code = "STORAGE_CLOSED";
  constructor() {
    super("the storage is closed");
    this.name = "StorageClosedError";
  }
}
