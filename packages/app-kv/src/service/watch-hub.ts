import { CompactedError } from "../errors.js";
import type { KvMachine } from "../kv-machine.js";
import { type KeyRange, type KvEvent, inRange } from "../ops.js";

/** What a watcher receives: every event of one or more whole revisions, oldest first. */
export interface WatchBatch {
  /**
   * The store's revision this batch brings the watcher to: every event up to
   * and including it has been sent. A batch with no events is progress (the
   * store moved, nothing in the range changed): resume from `revision + 1`.
   */
  readonly revision: number;
  readonly events: readonly KvEvent[];
}

/** Why a watch ended, for its final reply. */
export type WatchEnd =
  /** History from the watcher's revision was compacted away. */
  | { readonly code: "COMPACTED"; readonly compactRevision: number }
  /** The watcher fell too far behind (its connection's buffer filled): resume from `resumeRevision`. */
  | { readonly code: "WATCH_SLOW"; readonly resumeRevision: number }
  /** The server is stopping: resume elsewhere from `resumeRevision`. */
  | { readonly code: "STOPPED"; readonly resumeRevision: number }
  /** This replica has been without a leader (cut off?), so its feed may be stale: resume elsewhere from `resumeRevision`. */
  | { readonly code: "NO_LEADER"; readonly resumeRevision: number };

export interface WatchSink {
  send(batch: WatchBatch): void;
  end(reason: WatchEnd): void;
  /** Bytes sent and not yet written to the connection. */
  readonly bufferedBytes: number;
}

export interface WatchHubOptions {
  /** A watcher with more than this many bytes queued on its connection is cancelled (default 8 MiB). */
  readonly maxBufferedBytes?: number;
  /** Most events read from history per catch-up step (default 1 000); a revision is never split. */
  readonly catchUpEvents?: number;
  /** A watcher whose range saw no change gets a progress batch at most this often (default 1 s). */
  readonly progressIntervalMs?: number;
}

interface Watcher {
  readonly range: KeyRange;
  readonly sink: WatchSink;
  /** The next revision this watcher needs. */
  next: number;
  lastSentAt: number;
}

/**
 * Serves watches from the replica's applied state. The state machine keeps
 * a bounded history of events; after every applied batch the hub reads the
 * new events once, and hands each watcher the ones in its range, whole
 * revisions at a time (a transaction's events arrive together). A watcher
 * that starts in the past catches up from history in bounded steps first.
 *
 * Applying never waits for a watcher: sending only queues bytes on its
 * connection, and a watcher whose queue passes `maxBufferedBytes` is ended
 * with `WATCH_SLOW` and the revision to resume from.
 */
export class WatchHub {
  private readonly watchers = new Set<Watcher>();
  /** Every event through this revision has been handed to the caught-up watchers. */
  private deliveredThrough: number;
  private readonly maxBufferedBytes: number;
  private readonly catchUpEvents: number;
  private readonly progressIntervalMs: number;

  constructor(
    private readonly machine: KvMachine,
    options: WatchHubOptions = {},
    private readonly now: () => number = () => performance.now(),
  ) {
    this.deliveredThrough = machine.revision;
    this.maxBufferedBytes = options.maxBufferedBytes ?? 8 * 1024 * 1024;
    this.catchUpEvents = options.catchUpEvents ?? 1_000;
    this.progressIntervalMs = options.progressIntervalMs ?? 1_000;
  }

  get size(): number {
    return this.watchers.size;
  }

  /**
   * Watches `[start, end)` from `fromRevision` (0: from the next change on).
   * Returns what stops it. Ends at once with `COMPACTED` when that history is gone.
   */
  watch(range: KeyRange, fromRevision: number, sink: WatchSink): () => void {
    const next = fromRevision > 0 ? fromRevision : this.machine.revision + 1;
    const historyStart = this.machine.historyStartRevision;
    if (next < historyStart && next <= this.machine.revision) {
      sink.end({ code: "COMPACTED", compactRevision: historyStart });
      return () => undefined;
    }
    const watcher: Watcher = { range, sink, next, lastSentAt: this.now() };
    this.watchers.add(watcher);
    // Watching from now: say which revision "now" is, so that a resume after a disconnect leaves no gap.
    if (fromRevision <= 0) sink.send({ revision: next - 1, events: [] });
    this.catchUp(watcher);
    return () => {
      this.watchers.delete(watcher);
    };
  }

  /** Call after the machine applied commands: hands out what changed. */
  onApplied(): void {
    const revision = this.machine.revision;
    if (revision === this.deliveredThrough) return;
    let fresh: KvEvent[] | undefined;
    try {
      fresh = this.machine.eventsSince(this.deliveredThrough + 1);
    } catch (error) {
      // More changed at once than history keeps (or a snapshot replaced the
      // state): caught-up watchers catch up (or learn COMPACTED) on their own.
      if (!(error instanceof CompactedError)) throw error;
    }
    const previous = this.deliveredThrough;
    this.deliveredThrough = revision;
    for (const watcher of [...this.watchers]) {
      if (fresh !== undefined && watcher.next === previous + 1) {
        const events = fresh.filter((event) => inRange(event.key, watcher.range.start, watcher.range.end));
        this.deliver(watcher, events, revision);
      } else {
        this.catchUp(watcher);
      }
    }
  }

  /** Ends every watcher, each with the revision to resume from: the server is stopping, or has lost its leader. */
  close(code: "STOPPED" | "NO_LEADER" = "STOPPED"): void {
    for (const watcher of [...this.watchers]) this.finish(watcher, { code, resumeRevision: watcher.next });
  }

  /** Sends a lagging watcher history, a bounded step at a time, until it reaches the applied revision. */
  private catchUp(watcher: Watcher): void {
    while (this.watchers.has(watcher) && watcher.next <= this.machine.revision) {
      let events: KvEvent[];
      try {
        events = this.machine.eventsSince(watcher.next, watcher.range, this.catchUpEvents);
      } catch (error) {
        if (!(error instanceof CompactedError)) throw error;
        return this.finish(watcher, { code: "COMPACTED", compactRevision: error.compactRevision });
      }
      if (events.length < this.catchUpEvents) {
        // Everything in the range through the applied revision.
        this.deliver(watcher, events, this.machine.revision);
        return;
      }
      // A full step: the last revision may be cut short, so it waits for the next step, unless it is the only one.
      const last = (events[events.length - 1] as KvEvent).revision;
      const whole = events.filter((event) => event.revision < last);
      if (whole.length > 0) {
        this.deliver(watcher, whole, last - 1);
      } else {
        const revision = this.machine.eventsSince(last, watcher.range).filter((event) => event.revision === last);
        this.deliver(watcher, revision, last);
      }
    }
  }

  private deliver(watcher: Watcher, events: readonly KvEvent[], through: number): void {
    if (!this.watchers.has(watcher)) return;
    if (watcher.sink.bufferedBytes > this.maxBufferedBytes) return this.finish(watcher, { code: "WATCH_SLOW", resumeRevision: watcher.next });
    const now = this.now();
    if (events.length > 0 || now - watcher.lastSentAt >= this.progressIntervalMs) {
      watcher.sink.send({ revision: through, events });
      watcher.lastSentAt = now;
    }
    watcher.next = through + 1;
  }

  private finish(watcher: Watcher, reason: WatchEnd): void {
    if (!this.watchers.delete(watcher)) return;
    watcher.sink.end(reason);
  }
}
