/**
 * Master leases rest on a clock assumption: no replica's clock runs faster or
 * slower than real time by more than `maxClockDrift`. This test breaks it on
 * purpose and shows the linearizability checker catching the stale read it
 * makes, then keeps it and shows the same steps stay linearizable.
 *
 * Three in-process replicas with manual clocks. The leader is cut off from
 * the other two. The followers' clocks run on past the lease they granted; the
 * leader's clock either stands still (drift far beyond any bound) or runs
 * with theirs (no drift). The followers elect a new leader and write; then a
 * client reads at the old leader.
 */
import { type Clock, MemoryNetwork, MemoryStorage, type NodeId, type PlantedBug, SynodNode } from "@synod/core";
import { ListMachine } from "@synod/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { poll } from "../src/processes.js";
import { type CasRegisterInput, type CasRegisterOutput, type Operation, casRegisterModel, checkOperations } from "../src/lincheck/index.js";

const LEASE_MS = 1_000;
const ids: NodeId[] = ["a", "b", "c"];
let nodes: SynodNode<number, number, number, "all", number[]>[] = [];

afterEach(async () => {
  await Promise.all(nodes.map((node) => node.stop()));
  nodes = [];
});


interface Attempt {
  /** How far the followers' clocks and the old leader's clock run while it is cut off (ms). */
  readonly followersAdvance: number;
  readonly leaderAdvance: number;
  /** The drift bound the leases assume. */
  readonly maxClockDrift: number;
  readonly bugs?: readonly PlantedBug[];
}

/** Runs the steps and returns the recorded history. */
async function staleReadAttempt(attempt: Attempt): Promise<Operation<CasRegisterInput, CasRegisterOutput>[]> {
  const network = new MemoryNetwork();
  const clocks = new Map<NodeId, { ms: number } & Clock>(ids.map((id) => [id, { ms: 0, now() { return this.ms; } }]));
  nodes = ids.map(
    (id) =>
      new SynodNode<number, number, number, "all", number[]>({
        id,
        voters: ids,
        storage: new MemoryStorage(),
        transport: network.transport(id),
        stateMachine: new ListMachine(),
        tickMs: 5,
        clock: clocks.get(id) as Clock,
        replica: { leaseMs: LEASE_MS, maxClockDrift: attempt.maxClockDrift },
        bugs: new Set(attempt.bugs ?? []),
      }),
  );
  await Promise.all(nodes.map((node) => node.start()));
  const history: Operation<CasRegisterInput, CasRegisterOutput>[] = [];
  const record = async (clientId: number, input: CasRegisterInput, run: () => Promise<CasRegisterOutput>) => {
    const call = performance.now();
    try {
      const output = await run();
      history.push({ clientId, input, output, call, return: performance.now() });
    } catch {
      history.push({ clientId, input, output: undefined, call, return: Number.POSITIVE_INFINITY });
    }
  };
  const lastOf = (items: readonly number[]) => (items.length === 0 ? null : String(items[items.length - 1]));

  const old = await poll(() => nodes.find((node) => node.status().role === "leader" && node.status().leaseRemainingMs !== undefined), 10_000, "a leader holding its lease", 2);
  await record(0, { kind: "write", value: "1" }, async () => {
    await old.propose(1);
    return { kind: "write" };
  });
  const others = nodes.filter((node) => node !== old);
  network.isolate(old.id, others.map((node) => node.id));
  for (const node of others) (clocks.get(node.id) as { ms: number }).ms += attempt.followersAdvance;
  (clocks.get(old.id) as { ms: number }).ms += attempt.leaderAdvance;
  const successor = await poll(() => others.find((node) => node.status().role === "leader"), 10_000, "a new leader among the others", 2);
  await record(1, { kind: "write", value: "2" }, async () => {
    await successor.propose(2);
    return { kind: "write" };
  });
  // After the write was acknowledged, a client reads at the old leader.
  await record(2, { kind: "read" }, async () => {
    const items = await Promise.race([old.read("all"), new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no answer")), 500))]);
    return { kind: "read", value: lastOf(items) };
  });
  return history;
}

describe("master leases and the clock bound", () => {
  it("a leader whose clock stands still (drift far beyond the bound) serves a stale read, and the checker catches it", async () => {
    // The followers' clocks run past the lease they granted; the old leader's stands still.
    const history = await staleReadAttempt({ followersAdvance: 2 * LEASE_MS, leaderAdvance: 0, maxClockDrift: 0.01 });
    expect(history.at(-1)?.output).toEqual({ kind: "read", value: "1" });
    expect(checkOperations(casRegisterModel, history).verdict).toBe("not linearizable");
  });

  it("with the clocks within the bound, the old leader's lease runs out first: no stale read, and the history is linearizable", async () => {
    // Clocks a fifth apart, and leases that assume up to 20 %: the leader counts 1000 × 0.8 / 1.2 ≈ 667 ms.
    const history = await staleReadAttempt({ followersAdvance: 1_100, leaderAdvance: 800, maxClockDrift: 0.2 });
    expect(history.at(-1)?.output).toBeUndefined();
    expect(checkOperations(casRegisterModel, history).verdict).toBe("linearizable");
  });
});

describe("the planted lease bugs are caught", () => {
  it("lease-ignores-drift: the same clocks within the bound, but the leader counts the whole lease, and serves a stale read", async () => {
    const history = await staleReadAttempt({ followersAdvance: 1_100, leaderAdvance: 800, maxClockDrift: 0.2, bugs: ["lease-ignores-drift"] });
    expect(checkOperations(casRegisterModel, history).verdict).toBe("not linearizable");
  });

  it("lease-not-honoured: with no time passing at all, the followers elect a new leader under the old one's lease, and it serves a stale read", async () => {
    const history = await staleReadAttempt({ followersAdvance: 0, leaderAdvance: 0, maxClockDrift: 0.01, bugs: ["lease-not-honoured"] });
    expect(checkOperations(casRegisterModel, history).verdict).toBe("not linearizable");
  });
});
