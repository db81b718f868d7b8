/**
 * A min-heap of deadlines, ordered by `(at, id)`, for state machines that
 * expire things by log time (leases, sessions). Ordering by id on equal
 * deadlines makes the expiry order the same on every replica. Entries are
 * never removed out of order: when a deadline moves, push the new one and
 * let `popDue`'s `isCurrent` skip the stale entry; `rebuild` drops stale
 * entries once they dominate.
 */
export class DeadlineHeap<Id extends string | number> {
  private heap: { readonly at: number; readonly id: Id }[] = [];

  get size(): number {
    return this.heap.length;
  }

  push(at: number, id: Id): void {
    const heap = this.heap;
    heap.push({ at, id });
    let index = heap.length - 1;
    while (index > 0) {
      const parent = (index - 1) >>> 1;
      if (!this.before(index, parent)) break;
      this.swap(index, parent);
      index = parent;
    }
  }

  /** The earliest current deadline, skipping (and dropping) stale entries at the top. */
  peek(isCurrent: (id: Id, at: number) => boolean): number | undefined {
    for (;;) {
      const top = this.heap[0];
      if (top === undefined) return undefined;
      if (isCurrent(top.id, top.at)) return top.at;
      this.pop();
    }
  }

  /** Takes the earliest current entry if it is due at `now` (stale entries are dropped on the way). */
  popDue(now: number, isCurrent: (id: Id, at: number) => boolean): Id | undefined {
    for (;;) {
      const top = this.heap[0];
      if (top === undefined || top.at > now) return undefined;
      this.pop();
      if (isCurrent(top.id, top.at)) return top.id;
    }
  }

  /** Whether an entry for `id` at `at` is in the heap (O(n): for invariant checks). */
  contains(at: number, id: Id): boolean {
    return this.heap.some((entry) => entry.at === at && entry.id === id);
  }

  /** Replaces the heap with the current deadlines only. */
  rebuild(entries: Iterable<{ readonly at: number; readonly id: Id }>): void {
    this.heap = [];
    for (const entry of entries) this.push(entry.at, entry.id);
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    heap[0] = last;
    let index = 0;
    for (;;) {
      const left = 2 * index + 1;
      const right = left + 1;
      let smallest = index;
      if (left < heap.length && this.before(left, smallest)) smallest = left;
      if (right < heap.length && this.before(right, smallest)) smallest = right;
      if (smallest === index) return;
      this.swap(index, smallest);
      index = smallest;
    }
  }

  private before(a: number, b: number): boolean {
    const x = this.heap[a] as { at: number; id: Id };
    const y = this.heap[b] as { at: number; id: Id };
    return x.at < y.at || (x.at === y.at && x.id < y.id);
  }

  private swap(a: number, b: number): void {
    const heap = this.heap;
    [heap[a], heap[b]] = [heap[b] as { at: number; id: Id }, heap[a] as { at: number; id: Id }];
  }
}
