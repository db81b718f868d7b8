import { MemoryNetwork, MemoryStorage, type NodeId, SynodNode } from "@synod/core";
import { ListMachine } from "@synod/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { CatchUpPace, Membership, MembershipError, type ReconfigurableNode } from "../src/index.js";

/** An in-process cluster: every replica starts from the same bootstrap configuration; the others wait to be added. */
class Cluster {
  readonly network = new MemoryNetwork();
  readonly nodes = new Map<NodeId, SynodNode<number, number, number, "all", number[]>>();
  readonly machines = new Map<NodeId, ListMachine>();

  constructor(bootstrap: readonly NodeId[], spares: readonly NodeId[]) {
    for (const id of [...bootstrap, ...spares]) {
      const machine = new ListMachine();
      this.machines.set(id, machine);
      this.nodes.set(
        id,
        new SynodNode({ id, voters: bootstrap, storage: new MemoryStorage(), transport: this.network.transport(id), stateMachine: machine, tickMs: 5, replica: { alpha: 8 } }),
      );
    }
  }

  async start(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((node) => node.start()));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((node) => node.stop()));
  }

  leader(): SynodNode<number, number, number, "all", number[]> | undefined {
    return [...this.nodes.values()].find((node) => node.status().role === "leader");
  }

  async waitForLeader(): Promise<SynodNode<number, number, number, "all", number[]>> {
    return waitFor(() => this.leader());
  }

  items(id: NodeId): number[] {
    return (this.machines.get(id) as ListMachine).items;
  }
}

async function waitFor<T>(probe: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Writes 1, 2, 3, … to whichever replica leads, until stopped; records which writes were acknowledged. */
function writeLoad(cluster: Cluster): { stop(): Promise<void>; readonly acknowledged: number[]; readonly uncertain: number[]; readonly errors: string[] } {
  const acknowledged: number[] = [];
  const uncertain: number[] = [];
  const errors: string[] = [];
  let running = true;
  const loop = (async () => {
    for (let value = 1; running; value += 1) {
      const leader = cluster.leader();
      if (leader === undefined) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        value -= 1;
        continue;
      }
      try {
        await leader.propose(value);
        acknowledged.push(value);
      } catch (error) {
        const code = (error as { code?: string }).code ?? String(error);
        // Every error a writer sees must be one it can retry.
        if ((error as { retryable?: boolean }).retryable !== true) errors.push(code);
        uncertain.push(value);
      }
    }
  })();
  return {
    acknowledged,
    uncertain,
    errors,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

let cluster: Cluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

describe("Membership.change", () => {
  it("grows 3 to 5 under writes and shrinks back to 3 with the leader among the removed; no acknowledged write is lost", async () => {
    cluster = new Cluster(["n1", "n2", "n3"], ["n4", "n5"]);
    await cluster.start();
    const load = writeLoad(cluster);
    await waitFor(() => (load.acknowledged.length >= 50 ? true : undefined));

    const first = await cluster.waitForLeader();
    const changes: { voters: readonly NodeId[]; learners: readonly NodeId[] }[] = [];
    const recording: ReconfigurableNode = {
      id: first.id,
      status: () => first.status(),
      proposeConfig: (change) => {
        changes.push({ voters: [...change.voters].sort(), learners: [...change.learners].sort() });
        return first.proposeConfig(change);
      },
    };
    const grown = await new Membership(recording).change({ voters: ["n1", "n2", "n3", "n4", "n5"] }, { expectedConfigId: -1 });
    expect([...grown.voters].sort()).toEqual(["n1", "n2", "n3", "n4", "n5"]);
    expect(grown.learners).toEqual([]);
    // Two entries: n4 and n5 joined as learners, then were promoted once caught up.
    expect(changes).toEqual([
      { voters: ["n1", "n2", "n3"], learners: ["n4", "n5"] },
      { voters: ["n1", "n2", "n3", "n4", "n5"], learners: [] },
    ]);
    await waitFor(() => (load.acknowledged.length >= 150 ? true : undefined));

    const leader = await cluster.waitForLeader();
    const stay = ["n1", "n2", "n3", "n4", "n5"].filter((id) => id !== leader.id).slice(0, 3);
    const shrunk = await new Membership(leader).change({ voters: stay }, { expectedConfigId: grown.id });
    expect([...shrunk.voters].sort()).toEqual([...stay].sort());
    // The removed leader hands over to a voter of the new configuration.
    const next = await waitFor(() => {
      const current = cluster?.leader();
      return current !== undefined && stay.includes(current.id) ? current : undefined;
    });
    const acknowledgedBefore = load.acknowledged.length;
    await waitFor(() => (load.acknowledged.length >= acknowledgedBefore + 100 ? true : undefined));
    await load.stop();

    expect(load.errors).toEqual([]);
    const finalLeaderItems = await next.read("all");
    // Every replica of the final configuration applied the same log, and every acknowledged write is in it.
    await waitFor(() => (stay.every((id) => cluster?.items(id).length === finalLeaderItems.length) ? true : undefined));
    for (const id of stay) expect(cluster.items(id)).toEqual(finalLeaderItems);
    const applied = new Set(finalLeaderItems);
    for (const value of load.acknowledged) expect(applied.has(value)).toBe(true);
    // A write applied twice must have had an uncertain attempt (a retry after an unknown outcome).
    const seen = new Set<number>();
    for (const value of finalLeaderItems) {
      if (seen.has(value)) expect(load.uncertain).toContain(value);
      seen.add(value);
    }
    expect(next.status().config).toEqual(shrunk);
  });

  it("refuses a stale expected configuration, and a second change while one is under way", async () => {
    cluster = new Cluster(["n1", "n2", "n3"], ["n4"]);
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const membership = new Membership(leader);
    await expect(membership.change({ voters: ["n1", "n2"] }, { expectedConfigId: 7 })).rejects.toMatchObject({ code: "CONFIG_CHANGED", currentId: -1 });

    const adding = membership.addLearner("n4", { expectedConfigId: -1 });
    await expect(membership.remove("n3", { expectedConfigId: -1 })).rejects.toMatchObject({ code: "CHANGE_IN_PROGRESS" });
    const withLearner = await adding;
    expect(withLearner.learners).toEqual(["n4"]);
    // The learner is a read replica: it applies what the voters decide.
    await leader.propose(42);
    await waitFor(() => (cluster?.items("n4").includes(42) ? true : undefined));
    const view = membership.view();
    expect(view.config).toEqual(withLearner);
    expect(view.members.find((member) => member.id === "n4")).toMatchObject({ role: "learner" });
    expect(view.members.find((member) => member.leader)?.id).toBe(leader.id);
  });

  it("leaves a new member that cannot catch up a learner, with CATCH_UP_TIMEOUT naming it", async () => {
    cluster = new Cluster(["n1", "n2", "n3"], []);
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const membership = new Membership(leader);
    // n9 is not running: it can never catch up.
    const error = await membership.promote("n9", { expectedConfigId: -1, catchUpTimeoutMs: 300 }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(MembershipError);
    expect(error).toMatchObject({ code: "CATCH_UP_TIMEOUT", details: { lagging: ["n9"] } });
    const config = leader.status().config;
    expect(config.voters).toEqual(["n1", "n2", "n3"]);
    expect(config.learners).toEqual(["n9"]);
    expect(membership.view().members.find((member) => member.id === "n9")).toMatchObject({ role: "learner", lagSlots: undefined });
  });

  it("replaces a voter: the newcomer catches up as a learner, then one entry swaps them", async () => {
    cluster = new Cluster(["n1", "n2", "n3"], ["n4"]);
    await cluster.start();
    const leader = await cluster.waitForLeader();
    for (const value of [1, 2, 3]) await leader.propose(value);
    const old = ["n1", "n2", "n3"].find((id) => id !== leader.id) as string;
    const replaced = await new Membership(leader).replace(old, "n4", { expectedConfigId: -1, catchUpSlots: 0 });
    expect([...replaced.voters].sort()).toEqual(["n1", "n2", "n3", "n4"].filter((id) => id !== old).sort());
    expect(replaced.learners).toEqual([]);
    // It caught up before it could vote.
    expect(cluster.items("n4").slice(0, 3)).toEqual([1, 2, 3]);
    await leader.propose(4);
    await waitFor(() => (cluster?.items("n4").includes(4) ? true : undefined));
  });
});

describe("how far behind a learner may be (CatchUpPace)", () => {
  it("allows the fixed count while the log is idle or slow, and the leader's last window of slots when it is busy", () => {
    const pace = new CatchUpPace(64, 500);
    // Before a whole window has been seen: the count.
    expect(pace.allowance(0, 1_000)).toBe(64);
    expect(pace.allowance(250, 1_750)).toBe(64);
    // 3,000 slots a second: half a second's worth is 1,500.
    expect(pace.allowance(500, 2_500)).toBe(1_500);
    expect(pace.allowance(1_000, 4_000)).toBe(1_500);
    // The load stops: the window empties of chosen slots, and the count is back.
    expect(pace.allowance(1_500, 4_000)).toBe(64);
    expect(pace.allowance(2_000, 4_010)).toBe(64);
  });

  it("with no window, the count alone", () => {
    const pace = new CatchUpPace(10, 0);
    pace.allowance(0, 0);
    expect(pace.allowance(1_000, 100_000)).toBe(10);
  });
});
