import { invariant } from "@synod/core";
import type { Journal } from "./journal.js";
import { type KvEvent, inRange } from "./ops.js";

/** How much watch history to keep. Trimming drops whole revisions, oldest first. */
export interface EventRetention {
  /** Keep at most about this many events (the newest revision is kept whole even if it alone is larger). */
  readonly maxEvents: number;
  /** Keep only the events of the last this many revisions (undefined: no limit by revision). */
  readonly maxRevisions?: number | undefined;
}

export const DEFAULT_EVENT_RETENTION: EventRetention = { maxEvents: 100_000 };

/**
 * The ordered log of changes watchers read (`eventsSince`). It is separate
 * from the MVCC chains because a watcher wants every change in revision order
 * across keys, with the previous value, which the chains only give by a scan.
 *
 * `start` is the oldest revision from which the log is complete: every event
 * at or after it is still here. Trimming is lazy (between commands), because
 * an event appended by a command that later fails must be removable.
 */
export class EventLog {
  private events: KvEvent[] = [];
  /** Index of the first retained event; the array is compacted when the dropped prefix grows. */
  private head = 0;
  private complete = 1;

  constructor(private readonly journal: Journal) {}

  /** Every event with revision ≥ this is retained. */
  get startRevision(): number {
    return this.complete;
  }

  get length(): number {
    return this.events.length - this.head;
  }

  append(event: KvEvent): void {
    this.events.push(event);
    this.journal.record(() => {
      this.events.pop();
    });
  }

  /** Drops what the retention and the compaction point no longer keep. Only between commands. */
  trim(retention: EventRetention, revision: number, compactRevision: number): void {
    let cutoff = compactRevision - 1;
    if (retention.maxRevisions !== undefined) cutoff = Math.max(cutoff, revision - retention.maxRevisions);
    this.dropThrough(cutoff);
    for (;;) {
      const oldest = this.events[this.head];
      const newest = this.events[this.events.length - 1];
      if (oldest === undefined || newest === undefined || this.length <= retention.maxEvents || oldest.revision === newest.revision) break;
      this.dropThrough(oldest.revision);
    }
    if (this.head > 1024 && this.head * 2 > this.events.length) {
      this.events = this.events.slice(this.head);
      this.head = 0;
    }
  }

  /** Events with revision ≥ `fromRevision` whose key is in `[start, end)`, oldest first, at most `limit` (0: all). */
  since(fromRevision: number, start: string, end: string | undefined, limit: number): KvEvent[] {
    const found: KvEvent[] = [];
    for (let index = this.firstAtOrAfter(fromRevision); index < this.events.length; index += 1) {
      const event = this.events[index] as KvEvent;
      if (!inRange(event.key, start, end)) continue;
      found.push(event);
      if (found.length === limit) break;
    }
    return found;
  }

  /** The retained events, for a snapshot (the events themselves are immutable and shared). */
  retained(): KvEvent[] {
    return this.events.slice(this.head);
  }

  /** Events in revision order, none before the start or after `revision`. For tests. */
  checkInvariants(revision: number): void {
    let previous = this.complete;
    for (let index = this.head; index < this.events.length; index += 1) {
      const event = this.events[index] as KvEvent;
      invariant(event.revision >= previous && event.revision <= revision, () => `event at revision ${event.revision} out of order`);
      previous = event.revision;
    }
  }

  load(events: readonly KvEvent[], startRevision: number): void {
    this.events = events.slice();
    this.head = 0;
    this.complete = startRevision;
  }

  private dropThrough(revision: number): void {
    while (this.head < this.events.length && (this.events[this.head] as KvEvent).revision <= revision) this.head += 1;
    if (revision + 1 > this.complete) this.complete = revision + 1;
  }

  private firstAtOrAfter(revision: number): number {
    let low = this.head;
    let high = this.events.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.events[middle] as KvEvent).revision < revision) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
