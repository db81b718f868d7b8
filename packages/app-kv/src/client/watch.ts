import { ClientError, type Stream, type SynodClient } from "@synod/transport-ws";
import { CompactedError, KvOperationError } from "../errors.js";
import type { KeyRange, KvEvent } from "../ops.js";
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
 */
export class KvWatch implements AsyncIterableIterator<WatchBatch> {
  private readonly queue: WatchBatch[] = [];
  private waiter: { resolve(result: IteratorResult<WatchBatch>): void; reject(error: Error): void } | undefined;
  private stream: Stream | undefined;
  /** The replica the current (or last) stream was on. */
  private url: string | undefined;
  /** The revision to resume from: the one after the last batch queued. */
  private resume: number;
  private failure: Error | undefined;
  private done = false;
  private paused = false;
  private opening = false;
  private retryDelayMs = 10;
  private readonly maxBuffered: number;
  /** Bumped each time a stream is opened, so the ends of old streams are ignored. */
  private generation = 0;

  constructor(
    private readonly client: SynodClient,
    private readonly range: KeyRange,
    private readonly namespace: Namespace,
    options: WatchOptions,
    private readonly onRevision: (revision: number) => void,
  ) {
    this.resume = options.fromRevision ?? 0;
    this.maxBuffered = options.maxBufferedBatches ?? 1_000;
    const signal = options.signal;
    if (signal !== undefined) {
      if (signal.aborted) this.finish();
      else signal.addEventListener("abort", () => this.finish(), { once: true });
    }
    if (!this.done) void this.open();
  }

  /** The revision a new watch would resume from, after the last batch received. */
  get resumeRevision(): number {
    return this.resume;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<WatchBatch>> {
    const batch = this.queue.shift();
    if (batch !== undefined) {
      if (this.paused && this.queue.length <= this.maxBuffered / 2) {
        this.paused = false;
        void this.open();
      }
      return Promise.resolve({ value: batch, done: false });
    }
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** Stops the watch (what `break` in a `for await` calls). */
  return(): Promise<IteratorResult<WatchBatch>> {
    this.finish();
    return Promise.resolve({ value: undefined, done: true });
  }

  /** Stops the watch. */
  close(): void {
    this.finish();
  }

  private async open(): Promise<void> {
    if (this.done || this.opening || this.paused) return;
    this.opening = true;
    const generation = ++this.generation;
    const query = { ...this.range, ...(this.resume > 0 ? { fromRevision: this.resume } : {}) };
    try {
      const stream = await this.client.stream(query, {
        onData: (data) => {
          if (generation === this.generation) this.receive(data as WatchBatch);
        },
        onEnd: (error) => {
          if (generation === this.generation) this.ended(error);
        },
      });
      this.url = stream.url;
      if (this.done || generation !== this.generation) stream.cancel();
      else this.stream = stream;
    } catch (error) {
      this.opening = false;
      return this.ended(error instanceof ClientError ? error : new ClientError("DISCONNECTED", String(error)));
    }
    this.opening = false;
  }

  private receive(batch: WatchBatch): void {
    if (batch.revision < this.resume - 1) return;
    this.retryDelayMs = 10;
    if (batch.events.length === 0 && this.resume === batch.revision + 1) return;
    this.resume = batch.revision + 1;
    this.onRevision(batch.revision);
    const events: KvEvent[] = batch.events.map((event) => this.namespace.event(event));
    const delivered: WatchBatch = { revision: batch.revision, events };
    if (this.waiter !== undefined) {
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter.resolve({ value: delivered, done: false });
      return;
    }
    this.queue.push(delivered);
    if (this.queue.length >= this.maxBuffered && !this.paused) {
      // The consumer is slow: stop the server's stream; `next` resumes it.
      this.paused = true;
      this.generation += 1;
      this.stream?.cancel();
      this.stream = undefined;
    }
  }

  private ended(error: ClientError): void {
    this.stream = undefined;
    if (this.done) return;
    if (error.code === "COMPACTED") return this.fail(new CompactedError(Number(error.details.compactRevision ?? 0)));
    if (error.code === "INVALID_REQUEST") return this.fail(new KvOperationError({ code: "INVALID_REQUEST", message: error.message, reason: String(error.details.reason ?? error.message) }));
    if (!RESUMABLE.has(error.code)) return this.fail(error);
    // A replica that dropped us, is stopping or is cut off: resume on another.
    if (error.code !== "WATCH_SLOW" && this.url !== undefined) this.client.avoid(this.url);
    if (error.code === "WATCH_SLOW" && typeof error.details.resumeRevision === "number") this.resume = Math.max(this.resume, error.details.resumeRevision);
    const delay = this.retryDelayMs;
    this.retryDelayMs = Math.min(this.retryDelayMs * 2, 1_000);
    setTimeout(() => void this.open(), delay);
  }

  private fail(error: Error): void {
    this.failure = error;
    this.done = true;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(error);
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.generation += 1;
    this.stream?.cancel();
    this.stream = undefined;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.resolve({ value: undefined, done: true });
  }
}
