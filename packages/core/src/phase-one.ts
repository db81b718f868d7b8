import { type Ballot, type NodeId, compareBallots } from "./ballot.js";
import { hasQuorum } from "./quorum.js";
import type { SlotRecord, Value } from "./values.js";

/** The highest-ballot value Phase 1 found for a slot, or the chosen one. */
export interface FoundValue {
  readonly ballot: Ballot;
  readonly value: Value;
  readonly chosen: boolean;
}

/**
 * A candidate's Phase 1 for every slot from `fromSlot` on: which acceptors
 * promised, which have reported everything (`noMoreAccepted`), and per slot
 * the value a new leader must propose (the highest-ballot one, or the chosen
 * one). Pure bookkeeping; the replica sends and receives.
 */
export class PhaseOne {
  /** Acceptors that promised and reported everything they accepted. */
  private readonly completed = new Set<NodeId>();
  /** Acceptors sent a prepare at this ballot (a leader asks members it learns of later too). */
  private readonly asked = new Set<NodeId>();
  private readonly found = new Map<number, FoundValue>();
  /** The highest slot any promise reported; the new leader proposes up to it. */
  maxSlotFound: number;

  constructor(
    readonly ballot: Ballot,
    readonly fromSlot: number,
  ) {
    this.maxSlotFound = fromSlot - 1;
  }

  /** Takes one promise's entries; `complete` when it said `noMoreAccepted`. */
  record(acceptor: NodeId, entries: readonly SlotRecord[], complete: boolean): void {
    for (const entry of entries) this.consider(entry);
    if (complete) this.completed.add(acceptor);
  }

  /** Notes that `acceptor` is asked to promise; false when it already was (no prepare to send). */
  ask(acceptor: NodeId): boolean {
    if (this.asked.has(acceptor)) return false;
    this.asked.add(acceptor);
    return true;
  }

  /** Asked and not yet answered in full: a prepare to send again if it was lost. */
  awaits(acceptor: NodeId): boolean {
    return this.asked.has(acceptor) && !this.completed.has(acceptor);
  }

  /** The acceptors that promised and reported everything. */
  get complete(): ReadonlySet<NodeId> {
    return this.completed;
  }

  /** True once a quorum of acceptors has promised and reported everything. */
  hasQuorum(voters: readonly NodeId[]): boolean {
    return hasQuorum(voters, this.completed);
  }

  /** What Phase 1 found at `slot`: undefined for a gap (to fill with a no-op). */
  valueAt(slot: number): FoundValue | undefined {
    return this.found.get(slot);
  }

  private consider(entry: SlotRecord): void {
    if (entry.slot < this.fromSlot) return;
    const known = this.found.get(entry.slot);
    if (entry.chosen) {
      this.found.set(entry.slot, { ballot: entry.ballot, value: entry.value, chosen: true });
    } else if (known === undefined || (!known.chosen && compareBallots(entry.ballot, known.ballot) > 0)) {
      this.found.set(entry.slot, { ballot: entry.ballot, value: entry.value, chosen: false });
    }
    if (entry.slot > this.maxSlotFound) this.maxSlotFound = entry.slot;
  }
}
