/**
 * Paxos Made Live in operation, on SynodNodes in process: a replica that
 * lost its storage rebuilds as a non-voter and votes again on its own
 * (§5.1), and runtime consistency checks find a replica whose state
 * diverged, name it, and it rebuilds itself (§6.2).
 */
import { afterEach, describe, expect, it } from "vitest";
import type { MemoryStorage, NodeEvents } from "../src/index.js";
import { type Cluster, type Node, TICK_MS, converged, stableLeader, startCluster, stopStarted } from "./driver-harness.js";
import { waitFor } from "./wait.js";

afterEach(stopStarted);

/** Every event of kind `K` a node emits from now on. */
function record<K extends keyof NodeEvents>(node: Node, kind: K): NodeEvents[K][] {
  const seen: NodeEvents[K][] = [];
  node.on(kind, (event) => seen.push(event));
  return seen;
}

async function writeAll(leader: Node, ops: readonly number[]): Promise<void> {
  for (const op of ops) await leader.propose(op);
}

/** A follower of the stable leader. */
function followerOf(cluster: Cluster, leader: Node): Node {
  return cluster.nodes.find((node) => node !== leader) as Node;
}

describe("SynodNode: rebuilding a replica whose storage was lost (Paxos Made Live §5.1)", () => {
  it("restarts rebuilding, votes in nothing until it has caught up and seen a new instance, then votes again with the whole state", async () => {
    const cluster = await startCluster();
    const leader = await stableLeader(cluster);
    await writeAll(leader, [1, 2, 3]);
    const lost = followerOf(cluster, leader);
    await lost.stop();
    // The disk is lost: storage comes back empty and says so.
    const storage = cluster.storages[cluster.voters.indexOf(lost.id)];
    storage?.reopen();
    await storage?.reset();
    expect((await storage?.load())?.rebuilding).toBe(true);
    await writeAll(leader, [4, 5]);

    const rebuilt = await cluster.startNode(lost.id);
    const events = record(rebuilt, "rebuild");
    expect(rebuilt.status().rebuilding).toBe(true);
    // Idle cluster: the leader still begins an instance for the rebuilding replica's horizon.
    await waitFor(() => events.some((event) => event.phase === "finished"), "the rebuild to finish");
    expect(rebuilt.status().rebuilding).toBe(false);
    expect((await storage?.load())?.rebuilding).toBeUndefined();
    await converged(cluster, cluster.voters, [1, 2, 3, 4, 5]);
    // It votes again: with the other follower gone, the leader still commits with it.
    const other = cluster.nodes.find((node) => node !== leader && node !== rebuilt) as Node;
    await other.stop();
    await leader.propose(6);
    await converged(cluster, [leader.id, rebuilt.id], [1, 2, 3, 4, 5, 6]);
  });

  it("while it rebuilds it does not count: with it and one other left, no leader can be elected; once rebuilt, one is", async () => {
    const cluster = await startCluster();
    const leader = await stableLeader(cluster);
    await writeAll(leader, [1]);
    const lost = followerOf(cluster, leader);
    await lost.stop();
    const storage = cluster.storages[cluster.voters.indexOf(lost.id)];
    storage?.reopen();
    await storage?.reset();
    // The leader goes before the lost replica returns: no instance can begin, so it cannot finish rebuilding.
    await leader.stop();
    const rebuilt = await cluster.startNode(lost.id);
    const third = cluster.nodes.find((node) => node !== leader && node !== rebuilt) as Node;
    await new Promise((resolve) => setTimeout(resolve, 60 * TICK_MS));
    expect(rebuilt.status().rebuilding).toBe(true);
    expect([rebuilt.status().role, third.status().role]).not.toContain("leader");
    // The leader's replica comes back with its storage intact: a quorum of trusted voters again.
    cluster.storages[cluster.voters.indexOf(leader.id)]?.reopen();
    await cluster.startNode(leader.id);
    await waitFor(() => !rebuilt.status().rebuilding, "the rebuild to finish");
    await stableLeader(cluster);
    await converged(cluster, cluster.voters, [1]);
  });
});

describe("SynodNode: runtime consistency checks (Paxos Made Live §6.2)", () => {
  it("digests agree on every replica of a healthy cluster", async () => {
    const cluster = await startCluster({ checkEveryMs: 10 * TICK_MS });
    const checks = cluster.nodes.map((node) => record(node, "check"));
    const divergences = cluster.nodes.map((node) => record(node, "divergence"));
    const leader = await stableLeader(cluster);
    await writeAll(leader, [1, 2, 3]);
    await waitFor(() => checks.every((seen) => seen.length >= 2), "two checks on every replica");
    const slot = checks[0]?.[0]?.slot;
    for (const seen of checks) expect(seen.find((check) => check.slot === slot)?.digest).toBe(checks[0]?.[0]?.digest);
    expect(divergences.flat()).toEqual([]);
  });

  it("a replica whose state diverged is named by every replica within one check interval, rebuilds itself, and agrees again", async () => {
    const everyMs = 20 * TICK_MS;
    const cluster = await startCluster({ checkEveryMs: everyMs });
    const leader = await stableLeader(cluster);
    await writeAll(leader, [1, 2, 3]);
    const victim = followerOf(cluster, leader);
    const alarms = cluster.nodes.map((node) => record(node, "divergence"));
    const rebuilds = record(victim, "rebuild");
    const checksAfter = record(victim, "check");
    // Injected divergence: one replica's state changes outside the log (a bug, a bit flip in memory).
    cluster.machine(victim.id).items.push(99);
    const injectedAt = performance.now();
    // A disk takes its time to reset; status polls and metrics read `status()` on timers meanwhile: it must answer throughout.
    const storage = cluster.storages[cluster.voters.indexOf(victim.id)] as MemoryStorage;
    const reset = storage.reset.bind(storage);
    storage.reset = async () => {
      await new Promise((resolve) => setTimeout(resolve, 20 * TICK_MS));
      await reset();
    };
    const statusErrors: unknown[] = [];
    const seenRebuilding: boolean[] = [];
    const poller = setInterval(() => {
      try {
        seenRebuilding.push(victim.status().rebuilding);
      } catch (error) {
        statusErrors.push(error);
      }
    }, 1);
    await waitFor(() => alarms.every((seen) => seen.length > 0), "every replica to raise the alarm", 20 * everyMs);
    const detectedMs = performance.now() - injectedAt;
    console.log(`divergence detected by every replica ${detectedMs.toFixed(0)} ms after it was injected (check every ${everyMs} ms)`);
    // Named at the first check after the injection, by everyone, the diverged replica included.
    for (const seen of alarms) {
      expect(seen[0]).toMatchObject({ replica: victim.id, slot: checksAfter[0]?.slot });
      expect(seen[0]?.digest).not.toBe(seen[0]?.expected);
    }
    expect(alarms[cluster.nodes.indexOf(victim)]?.[0]?.self).toBe(true);
    await waitFor(() => rebuilds.some((event) => event.phase === "finished"), "the diverged replica to rebuild");
    expect(rebuilds[0]).toMatchObject({ phase: "started" });
    clearInterval(poller);
    expect(statusErrors).toEqual([]);
    expect(seenRebuilding).toContain(true);
    await writeAll(leader, [4]);
    await converged(cluster, cluster.voters, [1, 2, 3, 4]);
    // Healed: later checks find nothing more.
    const later = cluster.nodes.map((node) => record(node, "check"));
    const alarmsBefore = alarms.map((seen) => seen.length);
    await waitFor(() => later.every((seen) => seen.length >= 2), "two more checks everywhere", 20 * everyMs);
    expect(alarms.map((seen) => seen.length)).toEqual(alarmsBefore);
  });
});
