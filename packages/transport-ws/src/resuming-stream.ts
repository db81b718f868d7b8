import { ClientError, type Stream, type SynodClient } from "./client.js";

export interface ResumingStreamOptions<Item> {
  /** The stream's query to resume from `position` (the initial position first). */
  readonly query: (position: number) => unknown;
  /** The initial position. */
  readonly from: number;
  /** Validates one item from the wire (throws on a bad one) and returns it with the position to resume from after it. */
  readonly read: (data: unknown) => { readonly item: Item; readonly next: number };
  /** Whether an item only notes progress and need not reach the consumer (`previous`: the position before it). */
  readonly isProgress?: (item: Item, previous: number) => boolean;
  /** Turns a final error into the one the iterator throws; undefined: resume (after a pause, on another replica). */
  readonly fatal: (error: ClientError) => Error | undefined;
  /** Ends the stream (the iterator finishes). */
  readonly signal?: AbortSignal;
  /** Items held for a slow consumer before the server's stream is paused (default 1 000). */
  readonly maxBuffered?: number;
}

/**
 * An async iterator over a server stream that survives disconnects, server
 * restarts and slow-consumer cancellations by reopening the stream from the
 * position after the last item received, on another replica when the last
 * one failed. Memory stays bounded: when the consumer falls behind, the
 * server's stream is cancelled and reopened once it catches up.
 */
export class ResumingStream<Item> implements AsyncIterableIterator<Item> {
  private readonly queue: Item[] = [];
  private waiter: { resolve(result: IteratorResult<Item>): void; reject(error: Error): void } | undefined;
  private stream: Stream | undefined;
  private url: string | undefined;
  private position: number;
  private failure: Error | undefined;
  private done = false;
  private paused = false;
  private opening = false;
  private retryDelayMs = 10;
  private generation = 0;
  private readonly maxBuffered: number;

  constructor(
    private readonly client: SynodClient,
    private readonly options: ResumingStreamOptions<Item>,
  ) {
    this.position = options.from;
    this.maxBuffered = options.maxBuffered ?? 1_000;
    const signal = options.signal;
    if (signal !== undefined) {
      if (signal.aborted) this.finish();
      else signal.addEventListener("abort", () => this.finish(), { once: true });
    }
    if (!this.done) void this.open();
  }

  /** Where a new stream would resume. */
  get resumePosition(): number {
    return this.position;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<Item>> {
    const item = this.queue.shift();
    if (item !== undefined) {
      if (this.paused && this.queue.length <= this.maxBuffered / 2) {
        this.paused = false;
        void this.open();
      }
      return Promise.resolve({ value: item, done: false });
    }
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<Item>> {
    this.finish();
    return Promise.resolve({ value: undefined, done: true });
  }

  close(): void {
    this.finish();
  }

  private async open(): Promise<void> {
    if (this.done || this.opening || this.paused) return;
    this.opening = true;
    const generation = ++this.generation;
    try {
      const stream = await this.client.stream(this.options.query(this.position), {
        onData: (data) => {
          if (generation === this.generation) this.receive(data);
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

  private receive(data: unknown): void {
    let read: { item: Item; next: number };
    try {
      read = this.options.read(data);
    } catch (error) {
      return this.fail(error instanceof Error ? error : new Error(String(error)));
    }
    if (read.next < this.position) return;
    this.retryDelayMs = 10;
    const previous = this.position;
    this.position = read.next;
    if (this.options.isProgress?.(read.item, previous) === true) return;
    if (this.waiter !== undefined) {
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter.resolve({ value: read.item, done: false });
      return;
    }
    this.queue.push(read.item);
    if (this.queue.length >= this.maxBuffered && !this.paused) {
      this.paused = true;
      this.generation += 1;
      this.stream?.cancel();
      this.stream = undefined;
    }
  }

  private ended(error: ClientError): void {
    this.stream = undefined;
    if (this.done) return;
    const fatal = this.options.fatal(error);
    if (fatal !== undefined) return this.fail(fatal);
    if (error.code !== "WATCH_SLOW" && this.url !== undefined) this.client.avoid(this.url);
    const delay = this.retryDelayMs;
    this.retryDelayMs = Math.min(this.retryDelayMs * 2, 1_000);
    setTimeout(() => void this.open(), delay);
  }

  private fail(error: Error): void {
    this.failure = error;
    this.done = true;
    this.generation += 1;
    this.stream?.cancel();
    this.stream = undefined;
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
