import { describe, expect, it } from "vitest";
import { MemoryNetwork, MemoryStorage, NotLeaderError, SynodNode } from "../src/index.js";
import { ListMachine } from "../src/testing/index.js";
import { waitFor } from "./wait.js";



describe("SynodNode over the in-memory network", () => {
  it("elects a leader, chooses commands, and every replica applies them in order", async () => {
    const network = new MemoryNetwork();
    const voters = ["a", "b", "c"];
    const machines = voters.map(() => new ListMachine());
    const nodes = voters.map(
      (id, index) =>
        new SynodNode({
          id,
          voters,
          storage: new MemoryStorage(),
          transport: network.transport(id),
          stateMachine: machines[index] as ListMachine,
          tickMs: 5,
        }),
    );
    await Promise.all(nodes.map((node) => node.start()));
    const leader = await waitFor(() => nodes.find((node) => node.status().role === "leader"));
    const follower = nodes.find((node) => node !== leader) as SynodNode<number>;
    await expect(follower.propose(1)).rejects.toBeInstanceOf(NotLeaderError);
    const results = await Promise.all([1, 2, 3, 4, 5].map((n) => leader.propose(n)));
    expect(results.sort()).toEqual([1, 2, 3, 4, 5]);
    const guarded = await leader.proposeMulti({ guard: [5], top: [6], fop: [-1] });
    expect(guarded).toEqual({ succeeded: true, results: [6] });
    const refused = await leader.proposeMulti({ guard: [0], top: [7], fop: [-1] });
    expect(refused.succeeded).toBe(false);
    expect(await leader.read("all")).toEqual([1, 2, 3, 4, 5, 6, -1]);
    await waitFor(() => (machines.every((machine) => machine.items.length === 7) ? true : undefined));
    for (const machine of machines) expect(machine.items).toEqual([1, 2, 3, 4, 5, 6, -1]);
    await Promise.all(nodes.map((node) => node.stop()));
  });
});

describe("SynodNode: configuration changes through the log", () => {
  it("adds a learner that applies the log, refuses a stale change, and promotes the learner while removing the leader, after which a voter of the new configuration leads", async () => {
    const network = new MemoryNetwork();
    const bootstrap = ["a", "b", "c"];
    const all = ["a", "b", "c", "d"];
    const machines = new Map(all.map((id) => [id, new ListMachine()]));
    const nodes = new Map(
      all.map((id) => [
        id,
        new SynodNode({
          id,
          voters: bootstrap,
          storage: new MemoryStorage(),
          transport: network.transport(id),
          stateMachine: machines.get(id) as ListMachine,
          tickMs: 5,
          replica: { alpha: 4 },
        }),
      ]),
    );
    await Promise.all([...nodes.values()].map((node) => node.start()));
    const leaderNode = () => [...nodes.values()].find((node) => node.status().role === "leader");
    const first = await waitFor(leaderNode);
    for (const n of [1, 2, 3]) await first.propose(n);

    // d joins as a learner: it receives and applies the log, and is not counted.
    const withLearner = await first.proposeConfig({ expected: -1, voters: bootstrap, learners: ["d"] });
    expect(withLearner).toMatchObject({ voters: bootstrap, learners: ["d"] });
    await waitFor(() => ((machines.get("d") as ListMachine).items.length >= 3 ? true : undefined));

    // A change that expects the bootstrap configuration is now stale.
    await expect(first.proposeConfig({ expected: -1, voters: ["a"], learners: [] })).rejects.toMatchObject({ code: "CONFIG_CHANGED" });

    // Promote d and remove the leader in one change: leadership moves to a voter of the new configuration.
    const voters = [...all.filter((id) => id !== first.id && id !== "d"), "d"];
    const promoted = await first.proposeConfig({ expected: withLearner.id, voters, learners: [] });
    expect(promoted.voters).toEqual(voters);
    const next = await waitFor(() => {
      const leader = leaderNode();
      return leader !== undefined && leader !== first ? leader : undefined;
    });
    expect(voters).toContain(next.id);
    await next.propose(4);
    await waitFor(() => (voters.every((id) => (machines.get(id) as ListMachine).items.length === 4) ? true : undefined));
    for (const id of voters) expect((machines.get(id) as ListMachine).items.slice(0, 3)).toEqual([1, 2, 3]);
    expect(next.status().config).toEqual(promoted);
    await Promise.all([...nodes.values()].map((node) => node.stop()));
  });
});

describe("SynodNode: a replica joining a running cluster", () => {
  it("starts with no voters, stands for nothing, and learns the configuration with every member's address from the log", async () => {
    const network = new MemoryNetwork();
    const endpoints = { a: "ws://a", b: "ws://b", c: "ws://c" };
    const make = (id: string, voters: readonly string[]) =>
      new SynodNode({ id, voters, endpoints: voters.length > 0 ? endpoints : {}, storage: new MemoryStorage(), transport: network.transport(id), stateMachine: new ListMachine(), tickMs: 5, replica: { alpha: 4 } });
    const members = ["a", "b", "c"].map((id) => make(id, ["a", "b", "c"]));
    const joiner = make("d", []);
    const configs: unknown[] = [];
    joiner.on("config", (config) => configs.push(config));
    await Promise.all([...members, joiner].map((node) => node.start()));
    try {
      const leader = await waitFor(() => members.find((node) => node.status().role === "leader"));
      expect(leader.status().config.endpoints).toEqual(endpoints);
      // Left alone for many election timeouts, the joiner stands for nothing.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(joiner.status().role).toBe("follower");
      expect(joiner.status().config.voters).toEqual([]);

      const added = await leader.proposeConfig({ expected: -1, voters: ["a", "b", "c"], learners: ["d"], endpoints: { d: "ws://d" } });
      expect(added.endpoints).toEqual({ ...endpoints, d: "ws://d" });
      await waitFor(() => (joiner.status().config.id === added.id ? true : undefined));
      expect(joiner.status().config).toEqual(added);
      expect(configs).toEqual([added]);
      // A member removed takes its address with it.
      const removed = await leader.proposeConfig({ expected: added.id, voters: ["a", "b", "c"], learners: [] });
      expect(removed.endpoints).toEqual(endpoints);
    } finally {
      await Promise.all([...members, joiner].map((node) => node.stop()));
    }
  });
});
