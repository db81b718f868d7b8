import type { NodeId } from "../ballot.js";

/** A replica whose state at a check slot differs from the one a majority of the voters reported. */
export interface Divergence {
  readonly slot: number;
  readonly replica: NodeId;
  readonly digest: string;
  /** The digest a majority of the voters reported. */
  readonly expected: string;
}

interface Check {
  /** The voters of the configuration this replica applied the check under; unknown until it applies it. */
  voters: readonly NodeId[] | undefined;
  readonly digests: Map<NodeId, string>;
  readonly judged: Set<NodeId>;
}

/**
 * The runtime consistency checks' verdicts (Paxos Made Live §6.2). Every
 * replica that applies a `check` slot digests its state there and sends the
 * digest to the other members; each replica gathers the digests of each
 * check slot and, once a majority of that configuration's voters agree on
 * one, names every replica that reported another. The same verdict is
 * reached everywhere, and a diverged replica learns it too.
 */
export class ConsistencyChecks {
  private readonly checks = new Map<number, Check>();

  /** Keeps the reports of the last `keep` check slots. */
  constructor(private readonly keep = 16) {}

  /**
   * Records `replica`'s digest at `slot` (with the voters, when this replica
   * applied the slot itself) and returns the divergences it reveals.
   */
  report(slot: number, replica: NodeId, digest: string, voters?: readonly NodeId[]): Divergence[] {
    const check = this.checkAt(slot);
    if (check === undefined) return [];
    if (voters !== undefined) check.voters = voters;
    if (!check.digests.has(replica)) check.digests.set(replica, digest);
    return this.judge(slot, check);
  }

  /** Forgets every report (the replica is rebuilding). */
  clear(): void {
    this.checks.clear();
  }

  private checkAt(slot: number): Check | undefined {
    const existing = this.checks.get(slot);
    if (existing !== undefined) return existing;
    // Bounded: a report for a slot older than every one kept is dropped.
    if (this.checks.size >= this.keep) {
      const oldest = Math.min(...this.checks.keys());
      if (slot < oldest) return undefined;
      this.checks.delete(oldest);
    }
    const check: Check = { voters: undefined, digests: new Map(), judged: new Set() };
    this.checks.set(slot, check);
    return check;
  }

  private judge(slot: number, check: Check): Divergence[] {
    const voters = check.voters;
    if (voters === undefined) return [];
    const expected = majorityDigest(voters, check.digests);
    if (expected === undefined) return [];
    const found: Divergence[] = [];
    for (const [replica, digest] of check.digests) {
      if (check.judged.has(replica)) continue;
      check.judged.add(replica);
      if (digest !== expected) found.push({ slot, replica, digest, expected });
    }
    return found;
  }
}

/** The digest more than half of `voters` reported, if any. */
function majorityDigest(voters: readonly NodeId[], digests: ReadonlyMap<NodeId, string>): string | undefined {
  const counts = new Map<string, number>();
  for (const voter of voters) {
    const digest = digests.get(voter);
    if (digest !== undefined) counts.set(digest, (counts.get(digest) ?? 0) + 1);
  }
  for (const [digest, count] of counts) if (count * 2 > voters.length) return digest;
  return undefined;
}
