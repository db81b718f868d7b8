/**
 * Ballots: `(round, node)`, totally ordered by round, then by node id.
 *
 * Every acceptor keeps one promised ballot for the whole log; a leader's
 * ballot is also its epoch (Paxos Made Live §5.3). Two proposers can never
 * pick the same ballot because the node id breaks ties.
 */
export type NodeId = string;

export interface Ballot {
  /** Monotonic round number; a candidate picks one above every round it has seen. */
  readonly round: number;
  /** The proposer that owns this ballot. */
  readonly node: NodeId;
}

/** The ballot below every real ballot: nothing has been promised yet. */
export const ZERO_BALLOT: Ballot = Object.freeze({ round: 0, node: "" });

/** Negative when `a < b`, zero when equal, positive when `a > b`. */
export function compareBallots(a: Ballot, b: Ballot): number {
  if (a.round !== b.round) return a.round - b.round;
  if (a.node === b.node) return 0;
  return a.node < b.node ? -1 : 1;
}

export function ballotsEqual(a: Ballot, b: Ballot): boolean {
  return a.round === b.round && a.node === b.node;
}

export function maxBallot(a: Ballot, b: Ballot): Ballot {
  return compareBallots(a, b) >= 0 ? a : b;
}

/** The smallest ballot owned by `node` that is above `above`. */
export function nextBallot(above: Ballot, node: NodeId): Ballot {
  const candidate = { round: above.round, node };
  return compareBallots(candidate, above) > 0 ? candidate : { round: above.round + 1, node };
}

export function formatBallot(ballot: Ballot): string {
  return `${ballot.round}.${ballot.node || "-"}`;
}
