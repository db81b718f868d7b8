/**
 * The leader's view of one peer's replication progress (after etcd-io/raft's
 * `tracker.Progress` and `Inflights`): which slot to send next, and a window
 * of accepts sent but not acknowledged, bounded in count and bytes so that a
 * slow or dead peer costs bounded memory and never slows the others.
 */
export class PeerProgress {
  /** Next slot to send this peer an accept (or success) for. */
  next: number;
  /** The peer's own `firstUnchosen`, as last reported. */
  firstUnchosen = 0;
  /** Tick at which the peer last answered anything. */
  lastHeardTick: number;
  /** Tick at which the window last moved (an accept sent into an empty window, or an acknowledgement). */
  lastAckTick: number;
  /** A batch of `success` entries is on its way; don't send another until answered or timed out. */
  successInFlightSinceTick: number | undefined;

  private readonly slots: number[] = [];
  private readonly sizes: number[] = [];
  private head = 0;
  private bytes = 0;

  constructor(
    next: number,
    nowTick: number,
    private readonly maxSlots: number,
    private readonly maxBytes: number,
  ) {
    this.next = next;
    this.lastHeardTick = nowTick;
    this.lastAckTick = nowTick;
  }

  get inflightCount(): number {
    return this.slots.length - this.head;
  }

  get inflightBytes(): number {
    return this.bytes;
  }

  /** True when one more accept of `size` bytes fits; an empty window always takes one, however large. */
  canSend(size: number): boolean {
    const count = this.inflightCount;
    if (count === 0) return true;
    return count < this.maxSlots && this.bytes + size <= this.maxBytes;
  }

  /** Records an accept for `slot` as sent. */
  sent(slot: number, size: number, nowTick: number): void {
    if (this.inflightCount === 0) this.lastAckTick = nowTick;
    this.slots.push(slot);
    this.sizes.push(size);
    this.bytes += size;
    this.next = slot + 1;
  }

  /** Frees every window entry up to and including `slot` (replies acknowledge in order per peer). */
  acknowledge(slot: number, nowTick: number): void {
    this.lastAckTick = nowTick;
    while (this.head < this.slots.length && (this.slots[this.head] as number) <= slot) {
      this.bytes -= this.sizes[this.head] as number;
      this.head += 1;
    }
    if (this.head > 1024 && this.head * 2 > this.slots.length) this.compactWindow();
  }

  /**
   * Forgets the window and restarts sending from `next`: used when replies
   * stopped coming (lost messages, a restarted peer) so that we probe again.
   */
  reset(next: number): void {
    this.slots.length = 0;
    this.sizes.length = 0;
    this.head = 0;
    this.bytes = 0;
    this.next = next;
    this.successInFlightSinceTick = undefined;
  }

  private compactWindow(): void {
    this.slots.splice(0, this.head);
    this.sizes.splice(0, this.head);
    this.head = 0;
  }
}
