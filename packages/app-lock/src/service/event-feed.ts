import type { StreamSink } from "@synod/transport-ws";
import { z } from "zod";
import type { LockMachine } from "../lock-machine.js";
import type { LockEvent } from "../ops.js";
import { MAX_NAME_LENGTH } from "../schema.js";

/** A watch of lock events: locks whose name starts with `prefix` (or exactly `lock`), from event index `from` (0: from now). */
export const lockWatchSchema = z.strictObject({
  prefix: z.string().max(MAX_NAME_LENGTH).optional(),
  lock: z.string().min(1).max(MAX_NAME_LENGTH).optional(),
  from: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
});
export type LockWatchQuery = z.infer<typeof lockWatchSchema>;

/** What a lock watcher receives: the events (possibly none: progress) through `next - 1`. */
export interface LockEventBatch {
  /** Resume from this index. */
  readonly next: number;
  readonly events: readonly LockEvent[];
}

interface Watcher {
  readonly matches: (event: LockEvent) => boolean;
  readonly sink: StreamSink;
  next: number;
}

/**
 * Streams the lock service's events to watchers from the replica's applied
 * state, in order, resumable by index. After every applied batch each
 * watcher gets what it has not seen, in bounded steps; a watcher whose
 * connection is backed up past `maxBufferedBytes` is ended with `WATCH_SLOW`
 * and its resume index (applying never waits for it); one that asks for
 * events older than the retained history is ended with `COMPACTED`.
 */
export class LockEventFeed {
  private readonly watchers = new Set<Watcher>();

  constructor(
    private readonly machine: LockMachine,
    private readonly maxBufferedBytes = 8 * 1024 * 1024,
  ) {}

  get size(): number {
    return this.watchers.size;
  }

  watch(query: LockWatchQuery, sink: StreamSink): () => void {
    const oldest = this.machine.eventsSince(0, 1)[0]?.index ?? this.machine.eventIndex;
    const next = query.from === undefined || query.from === 0 ? this.machine.eventIndex : query.from;
    if (next < oldest) {
      sink.end({ ok: false, error: { code: "COMPACTED", message: `lock events before ${oldest} are no longer kept; read the current state and watch from ${oldest}`, details: { oldest } } });
      return () => undefined;
    }
    const prefix = query.prefix ?? "";
    const matches = (event: LockEvent) => {
      if (!("lock" in event)) return query.lock === undefined && prefix === "";
      return query.lock !== undefined ? event.lock === query.lock : event.lock.startsWith(prefix);
    };
    const watcher: Watcher = { matches, sink, next };
    this.watchers.add(watcher);
    // Say where "now" is, so that a resume after a disconnect leaves no gap.
    sink.send({ next, events: [] } satisfies LockEventBatch);
    this.deliver(watcher);
    return () => {
      this.watchers.delete(watcher);
    };
  }

  /** Call after the machine applied commands. */
  onApplied(): void {
    for (const watcher of [...this.watchers]) this.deliver(watcher);
  }

  /** Ends every watch (the server stops, or lost its leader) with the index to resume from. */
  close(code: "STOPPED" | "NO_LEADER" = "STOPPED"): void {
    for (const watcher of [...this.watchers]) this.end(watcher, code, `resume from event ${watcher.next}`);
  }

  private deliver(watcher: Watcher): void {
    while (this.watchers.has(watcher) && watcher.next < this.machine.eventIndex) {
      if (watcher.sink.bufferedBytes > this.maxBufferedBytes) return this.end(watcher, "WATCH_SLOW", `the watcher fell behind; resume from event ${watcher.next}`);
      const events = this.machine.eventsSince(watcher.next, 1_000);
      const first = events[0];
      if (first === undefined || first.index > watcher.next) {
        return this.end(watcher, "COMPACTED", `lock events from ${watcher.next} are no longer kept; read the current state and watch again`);
      }
      const last = events.at(-1) as LockEvent;
      watcher.next = last.index + 1;
      const matching = events.filter(watcher.matches);
      if (matching.length > 0) watcher.sink.send({ next: watcher.next, events: matching } satisfies LockEventBatch);
    }
  }

  private end(watcher: Watcher, code: string, message: string): void {
    if (!this.watchers.delete(watcher)) return;
    watcher.sink.end({ ok: false, error: { code, message, details: { resumeFrom: watcher.next } } });
  }
}
