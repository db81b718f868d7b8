import type { PersistBatch } from "../replica.js";

/**
 * Named points in a replica's life where a test can make it crash (Paxos Made
 * Live §6.3): on each side of making a promise or an accepted value durable,
 * and of writing a snapshot. "after" points fall between the write and the
 * replies that vouch for it, the gap a crash is most likely to expose.
 */
export const FAILURE_POINTS = [
  "before-persist-promise",
  "after-persist-promise",
  "before-persist-accept",
  "after-persist-accept",
  "before-snapshot",
  "after-snapshot",
] as const;

export type FailurePoint = (typeof FAILURE_POINTS)[number];

/**
 * Test-only: called by `SynodNode` at every failure point it passes. Throw to
 * crash the replica there (it stops as on a fatal error: nothing more is sent
 * or written), or end the process (a real crash, as the servers' `--crash-at`
 * does).
 */
export interface FailureHooks {
  at(point: FailurePoint): void;
}

/** The failure points on each side of persisting `batch`: for its promise, and for the values it accepts. */
export function persistPoints(batch: PersistBatch): { readonly before: FailurePoint[]; readonly after: FailurePoint[] } {
  const before: FailurePoint[] = [];
  const after: FailurePoint[] = [];
  if (batch.promised !== undefined) {
    before.push("before-persist-promise");
    after.push("after-persist-promise");
  }
  if (batch.records.some((record) => !record.chosen)) {
    before.push("before-persist-accept");
    after.push("after-persist-accept");
  }
  return { before, after };
}
