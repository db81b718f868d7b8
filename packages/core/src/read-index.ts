import type { NodeId } from "./ballot.js";

/** How many past heartbeat rounds the leader remembers its `firstUnchosen` for. */
const ROUND_MEMORY = 8;

interface PendingRead {
  readonly id: number;
  /** Every slot below this must be chosen and applied before the read is served. */
  readonly slot: number;
  /** A quorum must have answered this heartbeat round (or a later one). */
  readonly round: number;
}

/**
 * The leader's read index (Raft's ReadIndex in Paxos clothes): a read is
 * served once a quorum has answered a heartbeat round that started after the
 * read arrived (so no newer leader could have chosen anything the read must
 * see) and every slot the leader knew of then is chosen. Also remembers the
 * `firstUnchosen` each recent round carried, which tells whether a follower
 * that answered a round lacks a value.
 */
export class ReadIndex {
  /** The current heartbeat round. */
  round = 0;
  /** A round must go out soon for reads that wait. */
  roundWanted = false;
  private readonly acks = new Map<NodeId, number>();
  private readonly sentFirstUnchosen: number[] = [];
  private reads: PendingRead[] = [];

  get waiting(): number {
    return this.reads.length;
  }

  /** Registers a read that needs every slot below `slot`; answered by the next round. */
  add(id: number, slot: number): void {
    this.reads.push({ id, slot, round: this.round + 1 });
    this.roundWanted = true;
  }

  /** Starts a round that carries `firstUnchosen`; this replica answers it at once. */
  startRound(self: NodeId, firstUnchosen: number): number {
    this.round += 1;
    this.roundWanted = false;
    this.acks.set(self, this.round);
    this.sentFirstUnchosen[this.round % ROUND_MEMORY] = firstUnchosen;
    return this.round;
  }

  /** A voter answered `round`. */
  acknowledge(voter: NodeId, round: number): void {
    if ((this.acks.get(voter) ?? 0) < round) this.acks.set(voter, round);
  }

  /** The `firstUnchosen` sent in `round`, if that round is recent enough to remember. */
  firstUnchosenOf(round: number): number | undefined {
    return this.round - round < ROUND_MEMORY ? this.sentFirstUnchosen[round % ROUND_MEMORY] : undefined;
  }

  /**
   * Removes and returns the reads that may now be served. `electorates` are
   * the voters of every configuration a competing leader could need: a
   * majority of each must have answered.
   */
  takeReady(electorates: readonly (readonly NodeId[])[], firstUnchosen: number): { id: number; slot: number }[] {
    if (this.reads.length === 0) return [];
    let confirmed = Number.POSITIVE_INFINITY;
    for (const voters of electorates) {
      const answered = voters.map((voter) => this.acks.get(voter) ?? 0).sort((a, b) => b - a);
      // The highest round a majority of these voters has answered.
      confirmed = Math.min(confirmed, answered[Math.floor(voters.length / 2)] ?? 0);
    }
    const ready: { id: number; slot: number }[] = [];
    const waiting: PendingRead[] = [];
    for (const read of this.reads) {
      if (read.round <= confirmed && read.slot <= firstUnchosen) ready.push({ id: read.id, slot: read.slot });
      else waiting.push(read);
    }
    this.reads = waiting;
    return ready;
  }

  /** Removes every waiting read (leadership lost) and returns their ids. */
  takeAll(): number[] {
    const ids = this.reads.map((read) => read.id);
    this.reads = [];
    return ids;
  }
}
