/**
 * The doubly linked list of call and return entries that the Wing & Gong /
 * Lowe search walks (as in porcupine's `checkSingle`).
 *
 * The list holds the events of a partition in time order. Linearizing an
 * operation "lifts" its call and return entries out of the list; backtracking
 * "unlifts" them back into the very same place. Because entries are only ever
 * re-inserted in the reverse order of their removal, each entry's `prev` and
 * `next` still point at the right neighbours when it comes back, so both
 * operations are O(1).
 */

import type { Operation } from "./types.js";

export interface Entry {
  /** Index of the operation in the partition; -1 for the head sentinel. */
  readonly operationIndex: number;
  /** For a call entry, its return entry; `null` for return entries and the head. */
  readonly match: Entry | null;
  prev: Entry | null;
  next: Entry | null;
}

interface TimedEvent {
  readonly time: number;
  readonly isCall: boolean;
  readonly operationIndex: number;
}

/**
 * Orders events by time. At equal times calls come first, which treats the
 * touching operations as concurrent: the permissive reading, since a shared
 * timestamp does not prove which came first.
 */
function compareEvents(left: TimedEvent, right: TimedEvent): number {
  if (left.time !== right.time) return left.time < right.time ? -1 : 1;
  if (left.isCall !== right.isCall) return left.isCall ? -1 : 1;
  return left.operationIndex - right.operationIndex;
}

/** Builds the entry list of `operations` and returns its head sentinel. */
export function buildEntryList(operations: readonly Operation<unknown, unknown>[]): Entry {
  const events: TimedEvent[] = [];
  operations.forEach((operation, operationIndex) => {
    events.push({ time: operation.call, isCall: true, operationIndex });
    events.push({ time: operation.return, isCall: false, operationIndex });
  });
  events.sort(compareEvents);

  const returnEntries = new Map<number, Entry>();
  for (const event of events) {
    if (!event.isCall) returnEntries.set(event.operationIndex, { operationIndex: event.operationIndex, match: null, prev: null, next: null });
  }

  const head: Entry = { operationIndex: -1, match: null, prev: null, next: null };
  let tail = head;
  for (const event of events) {
    const entry: Entry = event.isCall
      ? { operationIndex: event.operationIndex, match: returnEntries.get(event.operationIndex) ?? null, prev: null, next: null }
      : (returnEntries.get(event.operationIndex) as Entry);
    entry.prev = tail;
    tail.next = entry;
    tail = entry;
  }
  return head;
}

/**
 * Removes a call entry and its return entry from the list. A call entry
 * always has a successor (at the latest its own return), hence the non-null
 * assertions.
 */
export function lift(callEntry: Entry): void {
  const previous = callEntry.prev as Entry;
  const following = callEntry.next as Entry;
  previous.next = following;
  following.prev = previous;
  const returnEntry = callEntry.match as Entry;
  const beforeReturn = returnEntry.prev as Entry;
  beforeReturn.next = returnEntry.next;
  if (returnEntry.next !== null) returnEntry.next.prev = beforeReturn;
}

/** Puts back the entries removed by the matching `lift`. */
export function unlift(callEntry: Entry): void {
  const returnEntry = callEntry.match as Entry;
  (returnEntry.prev as Entry).next = returnEntry;
  if (returnEntry.next !== null) returnEntry.next.prev = returnEntry;
  (callEntry.prev as Entry).next = callEntry;
  (callEntry.next as Entry).prev = callEntry;
}
