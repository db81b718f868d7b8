import { describe, expect, it } from "vitest";
import { MemoryNetwork, MemoryStorage, NotLeaderError, SynodNode } from "../src/index.js";
import { ListMachine } from "../src/testing/index.js";


async function waitFor<T>(probe: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

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
