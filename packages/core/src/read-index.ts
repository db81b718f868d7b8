import type { NodeId } from "./ballot.js";

/** How many past heartbeat rounds the leader remembers its `firstUnchosen` for. */
const ROUND_MEMORY = 8;

interface PendingRead {
  /** Served without a round: the leader held its lease when the read arrived. */
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
  /** When the latest round each voter answered was sent (by the leader's clock). */
  private readonly ackedSentAt = new Map<NodeId, number>();
  private readonly sentFirstUnchosen: number[] = [];
  /** When each remembered round was sent, by the leader's clock. */
  private readonly sentAt: number[] = [];
  private reads: PendingRead[] = [];

  get waiting(): number {
    return this.reads.length;
  }

  /** Registers a read that needs every slot below `slot`; answered by the next round, or at once under a lease. */
  add(id: number, slot: number, leased = false): void {
    this.reads.push({ id, slot, round: leased ? 0 : this.round + 1 });
    if (!leased) this.roundWanted = true;
  }

  /** Starts a round that carries `firstUnchosen`, sent at `now`; this replica answers it at once. */
  startRound(self: NodeId, firstUnchosen: number, now: number): number {
    this.round += 1;
    this.roundWanted = false;
    this.acks.set(self, this.round);
    this.ackedSentAt.set(self, now);
    this.sentFirstUnchosen[this.round % ROUND_MEMORY] = firstUnchosen;
    this.sentAt[this.round % ROUND_MEMORY] = now;
    return this.round;
  }

  /**
   * When the latest round a majority of every electorate answered was sent
   * (undefined if none): a lease runs from it.
   */
  confirmedSentAt(electorates: readonly (readonly NodeId[])[]): number | undefined {
    let confirmed = Number.POSITIVE_INFINITY;
    for (const voters of electorates) {
      const sent = voters.map((voter) => this.ackedSentAt.get(voter) ?? Number.NEGATIVE_INFINITY).sort((x, y) => y - x);
      confirmed = Math.min(confirmed, sent[Math.floor(voters.length / 2)] ?? Number.NEGATIVE_INFINITY);
    }
    return Number.isFinite(confirmed) ? confirmed : undefined;
  }

  /** A voter answered `round`. */
  acknowledge(voter: NodeId, round: number): void {
    if ((this.acks.get(voter) ?? 0) >= round) return;
    this.acks.set(voter, round);
    // Answers come back within a few rounds; one older than the rounds remembered vouches for no lease.
    if (this.round - round < ROUND_MEMORY) this.ackedSentAt.set(voter, this.sentAt[round % ROUND_MEMORY] as number);
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
    const confirmed = this.confirmedRound(electorates);
    const ready: { id: number; slot: number }[] = [];
    const waiting: PendingRead[] = [];
    for (const read of this.reads) {
      if (read.round <= confirmed && read.slot <= firstUnchosen) ready.push({ id: read.id, slot: read.slot });
      else waiting.push(read);
    }
    this.reads = waiting;
    return ready;
  }

  /** The highest round a majority of each electorate has answered. */
  private confirmedRound(electorates: readonly (readonly NodeId[])[]): number {
    let confirmed = Number.POSITIVE_INFINITY;
    for (const voters of electorates) {
      const answered = voters.map((voter) => this.acks.get(voter) ?? 0).sort((a, b) => b - a);
      confirmed = Math.min(confirmed, answered[Math.floor(voters.length / 2)] ?? 0);
    }
    return confirmed === Number.POSITIVE_INFINITY ? 0 : confirmed;
  }

  /** Removes every waiting read (leadership lost) and returns their ids. */
  takeAll(): number[] {
    const ids = this.reads.map((read) => read.id);
    this.reads = [];
    return ids;
  }
}
