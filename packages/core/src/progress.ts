import type { AcceptEntry } from "./messages.js";
import type { Value } from "./values.js";

/** What the leader has proposed in a slot, as the window needs it. */
export interface ProposedSlot {
  readonly value: Value;
  readonly size: number;
}

/**
 * The leader's view of one peer's replication progress (after etcd-io/raft's
 * `tracker.Progress` and `Inflights`): which slot to send next, and a window
 * of accepts sent but not acknowledged, bounded in count and bytes so that a
 * slow or dead peer costs bounded memory and never slows the others.
 */
export class PeerProgress {
  /** Next slot to send this peer an accept (or success) for. */
  next: number;
  /** The peer's own `firstUnchosen`, as last reported (0 until it answers). */
  firstUnchosen = 0;
  /** The peer has answered this leader at least once. */
  answered = false;
  /** Tick at which the peer last answered anything. */
  lastHeardTick: number;
  /** Tick at which the window last moved (an accept sent into an empty window, or an acknowledgement). */
  lastAckTick: number;
  /** A batch of `success` entries is on its way; don't send another until answered or timed out. */
  successInFlightSinceTick: number | undefined;
  /** The peer is rebuilding lost state: its probe, and the first slot proposed after it was heard (its horizon). */
  rebuild: { readonly probe: number; readonly slot: number } | undefined;

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

  /** The peer answered, reporting its `firstUnchosen`: the latest report, not the highest (a restarted replica may have lost unsynced chosen marks). */
  report(firstUnchosen: number, nowTick: number): void {
    this.firstUnchosen = firstUnchosen;
    this.lastHeardTick = nowTick;
    this.answered = true;
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

  /**
   * The accepts to send this peer now: proposals from `next` up to
   * `nextSlot`, as many as the window takes. Slots no longer proposed are
   * chosen; the peer learns those through `firstUnchosen` or `success`.
   */
  takeAccepts(proposals: ReadonlyMap<number, ProposedSlot>, nextSlot: number, nowTick: number): AcceptEntry[] {
    const entries: AcceptEntry[] = [];
    while (this.next < nextSlot) {
      const slot = this.next;
      const proposal = proposals.get(slot);
      if (proposal === undefined) {
        this.next = slot + 1;
        continue;
      }
      if (!this.canSend(proposal.size)) break;
      this.sent(slot, proposal.size, nowTick);
      entries.push({ slot, value: proposal.value });
    }
    return entries;
  }

  /**
   * Accepts or a `success` outstanding with no answer for `retransmitTicks`
   * were probably lost: probe again from what the peer last reported (but
   * never below `logStart`).
   */
  retransmitIfStalled(nowTick: number, retransmitTicks: number, logStart: number): void {
    if (this.inflightCount > 0 && nowTick - this.lastAckTick >= retransmitTicks) {
      this.reset(Math.max(this.firstUnchosen, logStart));
    }
    if (this.successInFlightSinceTick !== undefined && nowTick - this.successInFlightSinceTick >= retransmitTicks) {
      this.successInFlightSinceTick = undefined;
    }
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
