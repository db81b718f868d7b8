import type { Ballot, NodeId } from "./ballot.js";
import type { ConfigChange, Configuration } from "./config.js";
import type { PhaseOne } from "./phase-one.js";
import { PeerProgress } from "./progress.js";
import { ProposalQueue } from "./proposal-queue.js";
import { ReadIndex } from "./read-index.js";
import type { PeerStatus, ReplicaOptions } from "./replica-types.js";
import { CHECK, NOOP, type Value, valueSize } from "./values.js";

/** A value this leader proposed in a slot, and the acceptors that voted for it. */
export interface Proposal {
  readonly value: Value;
  readonly size: number;
  readonly votes: Set<NodeId>;
  /** Tick of the last (re)transmission of this proposal's accepts. */
  sentTick: number;
}

/**
 * What a replica keeps while it leads at one ballot (its epoch): the window
 * of proposals, the queue of client commands, each peer's progress, the read
 * index, and its Phase 1, kept for the whole leadership because slots enter
 * the window as `firstUnchosen` moves and each is proposed only once a
 * quorum of its own configuration has promised (members learned of later
 * are asked then), with the highest-ballot value any promise reported.
 * Bookkeeping only: the replica sends and decides.
 */
export class Leadership {
  /** The next slot to propose in. */
  nextSlot: number;
  /** Slots proposed at this ballot and not yet known chosen, with their votes. */
  readonly proposals = new Map<number, Proposal>();
  /** Client commands waiting for a slot. */
  readonly queue = new ProposalQueue();
  readonly peers = new Map<NodeId, PeerProgress>();
  readonly readIndex = new ReadIndex();
  /** A configuration change waiting for a slot of its own. */
  pendingConfig: { readonly change: ConfigChange; readonly request: string } | undefined;
  /** A consistency check waits for a slot of its own. */
  checkWanted = false;
  /** Some instance must begin even with nothing to propose (a rebuilding peer's horizon): a no-op will do. */
  noopWanted = false;

  constructor(
    readonly phase: PhaseOne,
    nextSlot: number,
    /** Log clock offset: log time = clock.now() + offset, continuing from the highest time in the log. */
    private readonly timeOffset: number,
  ) {
    this.nextSlot = nextSlot;
  }

  /** The leader's ballot: its epoch. */
  get ballot(): Ballot {
    return this.phase.ballot;
  }

  /** The leader's log clock: its own clock from where the log left off, never going back. */
  logTime(maxLogTime: number, now: number): number {
    return Math.max(maxLogTime, now + this.timeOffset);
  }

  /** True while a configuration change is waiting for a slot or proposed and not yet chosen. */
  changingConfig(): boolean {
    if (this.pendingConfig !== undefined) return true;
    for (const proposal of this.proposals.values()) if (proposal.value.type === "config") return true;
    return false;
  }

  /** Replicates to exactly `members` (less itself): new ones start from `firstUnchosen`. */
  syncPeers(members: ReadonlySet<NodeId>, self: NodeId, firstUnchosen: number, nowTick: number, options: ReplicaOptions): void {
    for (const member of members) {
      if (member === self || this.peers.has(member)) continue;
      this.peers.set(member, new PeerProgress(firstUnchosen, nowTick, options.maxInflightSlots, options.maxInflightBytes));
    }
    for (const peer of [...this.peers.keys()]) if (!members.has(peer)) this.peers.delete(peer);
  }

  peerStatuses(nowTick: number): PeerStatus[] {
    return [...this.peers].map(([id, progress]) => ({
      id,
      firstUnchosen: progress.answered ? progress.firstUnchosen : undefined,
      silentTicks: nowTick - progress.lastHeardTick,
      rebuilding: progress.rebuild !== undefined,
    }));
  }

  /**
   * The voter of `config` furthest along among those that have learned
   * `config` itself (one that has not does not know it votes), if any.
   */
  handOverTarget(config: Configuration): NodeId | undefined {
    let best: NodeId | undefined;
    let bestFirstUnchosen = config.id;
    for (const voter of config.voters) {
      const progress = this.peers.get(voter);
      if (progress?.answered === true && progress.rebuild === undefined && progress.firstUnchosen > bestFirstUnchosen) {
        best = voter;
        bestFirstUnchosen = progress.firstUnchosen;
      }
    }
    return best;
  }

  /**
   * The value to propose in `slot` (promised by a quorum of its
   * configuration): what Phase 1 found there, else the pending
   * configuration change, else a wanted consistency check, else a batch of
   * queued commands stamped `time`, else a no-op where a gap Phase 1 left
   * must be filled, while slots before `padUntil` (where the latest
   * configuration takes effect) remain, or where an instance is wanted;
   * undefined when there is nothing to propose.
   */
  nextValue(slot: number, options: ReplicaOptions, time: number, padUntil: number, ignoreFound: boolean): { value: Value; size: number } | undefined {
    const found = this.phase.valueAt(slot);
    if (found !== undefined) {
      const value = ignoreFound ? NOOP : found.value;
      return { value, size: valueSize(value) };
    }
    const pending = this.pendingConfig;
    if (pending !== undefined) {
      this.pendingConfig = undefined;
      const value: Value = { type: "config", change: pending.change, request: pending.request };
      return { value, size: valueSize(value) };
    }
    if (this.checkWanted) {
      this.checkWanted = false;
      this.noopWanted = false;
      return { value: CHECK, size: valueSize(CHECK) };
    }
    const batch = this.queue.cut(options.maxBatchCommands, options.maxBatchBytes);
    if (batch !== undefined) {
      this.noopWanted = false;
      return { value: { type: "batch", time, commands: batch.commands, epoch: this.ballot }, size: batch.bytes + 64 };
    }
    if (slot <= this.phase.maxSlotFound || slot < padUntil || this.noopWanted) {
      this.noopWanted = false;
      return { value: NOOP, size: valueSize(NOOP) };
    }
    return undefined;
  }
}
