import { ClientError, ResumingStream, type SynodClient } from "@synod/transport-ws";
import { CompactedError, KvOperationError } from "../errors.js";
import type { KeyRange } from "../ops.js";
import type { WatchBatch } from "../service/watch-hub.js";
import type { Namespace } from "./namespace.js";

export interface WatchOptions {
  /** Start at this revision (inclusive); absent or 0: from the next change on. */
  readonly fromRevision?: number;
  /** Ends the watch: the iterator finishes (no error). */
  readonly signal?: AbortSignal;
  /**
   * Batches held for a slow consumer before the client stops the server's
   * stream (and resumes it once the consumer catches up): memory stays
   * bounded and the server never waits (default 1 000).
   */
  readonly maxBufferedBatches?: number;
}

/** Ends that mean "resume from where we were", after a pause, possibly on another replica. */
const RESUMABLE = new Set(["DISCONNECTED", "WATCH_SLOW", "STOPPED", "NO_LEADER", "ENDED"]);

/**
 * A watch as an async iterator of batches, each holding every event of one
 * or more whole revisions in order. It survives disconnects, server
 * restarts and slow-consumer cancellations by resuming from the revision
 * after the last batch it received: every event arrives exactly once and in
 * order. If the history it needs was compacted, the iterator throws
 * `CompactedError` (re-read the state, then watch from `compactRevision`).
 * The first batch of a watch from now has no events: it says which revision
 * "now" was.
 */
export class KvWatch implements AsyncIterableIterator<WatchBatch> {
  private readonly stream: ResumingStream<WatchBatch>;

  constructor(client: SynodClient, range: KeyRange, namespace: Namespace, options: WatchOptions, onRevision: (revision: number) => void) {
    this.stream = new ResumingStream<WatchBatch>(client, {
      from: options.fromRevision ?? 0,
      query: (position) => ({ ...range, ...(position > 0 ? { fromRevision: position } : {}) }),
      read: (data) => {
        const batch = data as WatchBatch;
        return { item: { revision: batch.revision, events: batch.events.map((event) => namespace.event(event)) }, next: batch.revision + 1 };
      },
      // A progress note that moves nothing (the server repeats where a resumed watch starts).
      isProgress: (batch, previous) => {
        if (batch.events.length === 0 && previous === batch.revision + 1) return true;
        onRevision(batch.revision);
        return false;
      },
      fatal: (error: ClientError) => {
        if (error.code === "COMPACTED") return new CompactedError(Number(error.details.compactRevision ?? 0));
        if (error.code === "INVALID_REQUEST") return new KvOperationError({ code: "INVALID_REQUEST", message: error.message, reason: String(error.details.reason ?? error.message) });
        return RESUMABLE.has(error.code) ? undefined : error;
      },
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.maxBufferedBatches === undefined ? {} : { maxBuffered: options.maxBufferedBatches }),
    });
  }

  /** The revision a new watch would resume from, after the last batch received. */
  get resumeRevision(): number {
    return this.stream.resumePosition;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<WatchBatch>> {
    return this.stream.next();
  }

  /** Stops the watch (what `break` in a `for await` calls). */
  return(): Promise<IteratorResult<WatchBatch>> {
    return this.stream.return();
  }

  /** Stops the watch. */
  close(): void {
    this.stream.close();
  }
}
