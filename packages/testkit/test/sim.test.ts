import { FAILURE_POINTS } from "@synod/core";
import { describe, expect, it } from "vitest";
import { type SimulationResult, runSeeds, runSimulation } from "../src/index.js";

/** A failure message that names the seed and the one-line command that replays it. */
function failures(results: readonly SimulationResult[]): string {
  return results.map((result) => `seed ${result.seed}: ${result.violation?.split("\n")[0]}\n  replay: ${result.replay}`).join("\n");
}

describe("seeded simulation with faults", () => {
  // 500 runs across 3- and 5-replica clusters: partitions (clients cut too),
  // one-way cuts, loss, duplication, reordering, long delays, crashes with
  // torn unsynced writes, lost disks, pauses, disk stalls, clock drift; then a liveness
  // phase. Invariants after every event; every history checked.
  for (const replicas of [3, 5]) {
    it(`250 seeds on ${replicas} replicas: no violation, every history linearizable, lease reads, refused stale epochs and rebuilt disks among them`, () => {
      let leaseReads = 0;
      let staleEpoch = 0;
      let wipes = 0;
      let rebuilds = 0;
      const summary = runSeeds(1, 250, { replicas }, {
        onResult: (result) => {
          leaseReads += result.statistics.leaseReads;
          staleEpoch += result.statistics.staleEpochCommands;
          wipes += result.statistics.wipes;
          rebuilds += result.statistics.rebuilds;
        },
      });
      expect(failures(summary.failures)).toBe("");
      // Master leases are on (80 ms, drift bound 5 %, as the clocks drift): leaders serve many reads from their own state.
      expect(leaseReads).toBeGreaterThan(250 * 20);
      // Batches of a lost epoch were found and chosen after a newer epoch's, and refused: their clients retried.
      expect(staleEpoch).toBeGreaterThan(0);
      // Disks were lost (one replica at a time) and their replicas rebuilt and voted again, most before the run ended.
      expect(wipes).toBeGreaterThan(50);
      expect(rebuilds).toBeGreaterThan(wipes / 2);
      expect(summary.runs).toBe(250);
      expect(summary.operationsChecked).toBeGreaterThan(250 * 100);
      expect(summary.crashes).toBeGreaterThan(250);
      expect(summary.partitions).toBeGreaterThan(250);
    });
  }

  // Membership through the log: random configuration changes (add a learner,
  // promote, remove, replace, the leader's seat included, or a whole new set
  // of 1 to 7 voters) on top of every fault above.
  it("500 seeds with random configuration changes: no violation, every history linearizable, members converge, snapshots installed", () => {
    let proposed = 0;
    let chosen = 0;
    let installs = 0;
    const summary = runSeeds(
      1,
      500,
      { reconfigure: true, replicasFor: (seed) => (seed % 2 === 1 ? 3 : 5) },
      {
        onResult: (result) => {
          proposed += result.statistics.configChangesProposed;
          chosen += result.statistics.configChangesChosen;
          installs += result.statistics.snapshotsInstalled;
        },
      },
    );
    expect(failures(summary.failures)).toBe("");
    expect(summary.runs).toBe(500);
    expect(summary.operationsChecked).toBeGreaterThan(500 * 100);
    // Most seeds change their configuration several times.
    expect(chosen).toBeGreaterThan(500 * 2);
    expect(chosen).toBeLessThanOrEqual(proposed);
    // Logs are compacted to a short tail, so new and lagging members catch up through snapshots.
    expect(installs).toBeGreaterThan(100);
  });

  for (const replicas of [1, 7]) {
    it(`20 seeds on ${replicas} replica${replicas === 1 ? "" : "s"}`, () => {
      const summary = runSeeds(1_000, 20, { replicas });
      expect(failures(summary.failures)).toBe("");
    });
  }

  it("replays exactly from a seed: same seed, same trace; another seed, another trace", () => {
    const first = runSimulation({ seed: 4242, replicas: 5 });
    const again = runSimulation({ seed: 4242, replicas: 5 });
    const other = runSimulation({ seed: 4243, replicas: 5 });
    expect(again.traceHash).toBe(first.traceHash);
    expect(again.statistics).toEqual(first.statistics);
    expect(other.traceHash).not.toBe(first.traceHash);
  });

  it("makes progress once faults heal, and every replica converges", () => {
    const result = runSimulation({ seed: 99, replicas: 3 });
    expect(result.violation).toBeUndefined();
    expect(result.statistics.operationsAfterHeal).toBeGreaterThan(100);
    expect(result.statistics.leaderChanges).toBeGreaterThan(0);
  });

  it("prints the seed and a one-line replay command, which replays the same failure", () => {
    const summary = runSeeds(1, 50, { replicas: 3, bugs: ["ignore-session-table"] }, { stopAtFirstFailure: true });
    const caught = summary.failures[0];
    expect(caught?.violation).toMatch(/applied twice/);
    const seed = caught?.seed as number;
    expect(caught?.replay).toBe(`pnpm sim --seed ${seed} --replicas 3 --bug ignore-session-table`);
    const replayed = runSimulation({ seed, replicas: 3, bugs: ["ignore-session-table"] });
    expect(replayed.violation).toBe(caught?.violation);
    expect(replayed.traceHash).toBe(caught?.traceHash);
  });
});

describe("failure points in the simulator (Paxos Made Live §6.3)", () => {
  // Replicas crash right before or after a promise or an accepted value is
  // made durable, or a snapshot written, and restart a little later.
  it.each(FAILURE_POINTS)("crashes at %s: 40 seeds, no violation, and the point was hit", (point) => {
    let crashes = 0;
    const summary = runSeeds(1, 40, { crashAt: point, replicasFor: (seed) => (seed % 2 === 1 ? 3 : 5) }, { onResult: (result) => (crashes += result.statistics.failurePointCrashes) });
    expect(failures(summary.failures)).toBe("");
    expect(crashes).toBeGreaterThan(0);
  });
});
