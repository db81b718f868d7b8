import type { NodeId } from "./ballot.js";

/** Majority quorums over one configuration's voters. */
export function quorumSize(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/** True when the voters in `granted` form a majority of `voters`. */
export function hasQuorum(voters: readonly NodeId[], granted: ReadonlySet<NodeId>): boolean {
  let count = 0;
  for (const voter of voters) if (granted.has(voter)) count += 1;
  return count >= quorumSize(voters.length);
}
