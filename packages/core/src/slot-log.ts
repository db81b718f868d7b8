import { type Ballot, ZERO_BALLOT, compareBallots } from "./ballot.js";
import { type SlotRecord, type Value, valueSize } from "./values.js";

/** One slot as the acceptor holds it. */
export interface SlotState {
  readonly ballot: Ballot;
  readonly value: Value;
  readonly chosen: boolean;
}

/**
 * The acceptor's log in memory: per slot the accepted `(ballot, value)` and
 * whether it is known chosen, from `logStart` (below it, slots were compacted
 * into a snapshot) to `lastSlot`. Keeps the highest ballot of any unchosen
 * record, so "nothing accepted above the promise" is checked in O(1).
 */
export class SlotLog {
  private readonly slots = new Map<number, SlotState>();
  private start: number;
  private last: number;
  private highestAccepted: Ballot = ZERO_BALLOT;

  constructor(logStart: number) {
    this.start = logStart;
    this.last = logStart - 1;
  }

  /** Rebuilds the log from the records a storage recovered (all at or above `logStart`). */
  static recover(logStart: number, records: readonly SlotRecord[]): SlotLog {
    const log = new SlotLog(logStart);
    for (const record of records) {
      if (record.slot < logStart) throw new RangeError(`recovered record for slot ${record.slot} below logStart ${logStart}`);
      log.set(record.slot, { ballot: record.ballot, value: record.value, chosen: record.chosen });
    }
    return log;
  }

  /** The first slot still held; below it everything is chosen and compacted. */
  get logStart(): number {
    return this.start;
  }

  /** The highest slot ever written (at least `logStart - 1`). */
  get lastSlot(): number {
    return this.last;
  }

  get size(): number {
    return this.slots.size;
  }

  /** The highest ballot at which any still-unchosen slot was accepted. */
  get maxAcceptedBallot(): Ballot {
    return this.highestAccepted;
  }

  get(slot: number): SlotState | undefined {
    return this.slots.get(slot);
  }

  isChosen(slot: number): boolean {
    return this.slots.get(slot)?.chosen === true;
  }

  set(slot: number, state: SlotState): void {
    this.slots.set(slot, state);
    if (!state.chosen && compareBallots(state.ballot, this.highestAccepted) > 0) this.highestAccepted = state.ballot;
    if (slot > this.last) this.last = slot;
  }

  /** Drops every slot below `beforeSlot`. */
  compact(beforeSlot: number): void {
    for (let slot = this.start; slot < beforeSlot; slot += 1) this.slots.delete(slot);
    this.start = beforeSlot;
    if (this.last < beforeSlot - 1) this.last = beforeSlot - 1;
  }

  /**
   * The records from `fromSlot` on, at most `limit` of them, for a promise;
   * `nextSlot` is where a further prepare should continue, `complete` that
   * nothing at or after it was accepted (`noMoreAccepted`).
   */
  recordsFrom(
    fromSlot: number,
    limit: number,
    maxBytes: number,
    include: (state: SlotState) => boolean = () => true,
  ): { records: SlotRecord[]; nextSlot: number; complete: boolean } {
    const records: SlotRecord[] = [];
    let bytes = 0;
    let slot = Math.max(fromSlot, this.start);
    for (; slot <= this.last && records.length < limit; slot += 1) {
      const state = this.slots.get(slot);
      if (state === undefined || !include(state)) continue;
      bytes += valueSize(state.value);
      // Always at least one record, however large, so that the caller makes progress.
      if (records.length > 0 && bytes > maxBytes) break;
      records.push({ slot, ballot: state.ballot, value: state.value, chosen: state.chosen });
    }
    return { records, nextSlot: slot, complete: slot > this.last };
  }
}
