/**
 * The driver under failures (Paxos Made Live §6): crashes at named failure
 * points, a leader told it no longer leads, and disks that stall or slow down.
 */
import { afterEach, describe, expect, it } from "vitest";
import { FAILURE_POINTS, type FailurePoint, MemoryNetwork, MemoryStorage, NotLeaderError, type PersistBatch, SynodError, SynodNode } from "../src/index.js";
import { ListMachine } from "../src/testing/index.js";
import { type Cluster, type Config, type Node, TICK_MS, converged, sleep, stableLeader, startCluster, started, stopStarted } from "./driver-harness.js";
import { waitFor } from "./wait.js";

afterEach(stopStarted);

describe("SynodNode: failure hooks (Paxos Made Live §6.3)", () => {
  /** Hooks that record every point passed, and throw at `crashAt` once armed. */
  const hooks = (crashAt?: FailurePoint) => {
    const seen = new Set<FailurePoint>();
    const state = { armed: false, crashed: false };
    return {
      seen,
      state,
      at(point: FailurePoint) {
        seen.add(point);
        if (state.armed && point === crashAt && !state.crashed) {
          state.crashed = true;
          throw new Error(`crash at ${point}`);
        }
      },
    };
  };

  it("passes every named point: promises and accepts made durable, snapshots written", async () => {
    const recorded = hooks();
    const cluster = await startCluster({ snapshotEverySlots: 3, failureHooks: recorded });
    const leader = await stableLeader(cluster);
    for (let value = 0; value < 6; value += 1) await leader.propose(value);
    await waitFor(() => recorded.seen.has("after-snapshot"), "a snapshot");
    expect([...recorded.seen].sort()).toEqual([...FAILURE_POINTS].sort());
  });

  it("a follower crashed after making an accept durable, before answering, keeps the value and catches up on restart", async () => {
    const crashing = hooks("after-persist-accept");
    const cluster = await startCluster({}, ["a", "b", "c"]);
    const leader = await stableLeader(cluster);
    await leader.propose(1);
    const follower = cluster.nodes.find((node) => node !== leader) as Node;
    // Restart the follower with the hook armed: its next accept crashes it after the write.
    await follower.stop();
    const storage = cluster.storages[cluster.voters.indexOf(follower.id)] as MemoryStorage;
    storage.reopen();
    crashing.state.armed = true;
    const fatal: Error[] = [];
    const victim = await cluster.startNode(follower.id, { failureHooks: crashing });
    victim.on("fatal", (error) => fatal.push(error));
    await leader.propose(2);
    await waitFor(() => crashing.state.crashed, "the crash");
    await waitFor(() => fatal.length > 0, "the crashed replica to stop");
    expect(fatal[0]?.message).toBe("crash at after-persist-accept");
    // The value it accepted is on its disk, though its reply never left.
    const stored = await storage.load();
    expect(stored.records.some((record) => record.value.type === "batch" && record.value.commands.some((command) => command.body.type === "op" && command.body.op === 2))).toBe(true);
    await victim.stop();
    storage.reopen();
    await cluster.startNode(follower.id);
    await leader.propose(3);
    await converged(cluster, cluster.voters, [1, 2, 3]);
  });

  it("a replica crashed before writing a snapshot writes none, and the others go on", async () => {
    const crashing = hooks("before-snapshot");
    crashing.state.armed = true;
    const cluster = await startCluster({ snapshotEverySlots: 3 });
    const leader = await stableLeader(cluster);
    const follower = cluster.nodes.find((node) => node !== leader) as Node;
    await follower.stop();
    const storage = cluster.storages[cluster.voters.indexOf(follower.id)] as MemoryStorage;
    storage.reopen();
    const victim = await cluster.startNode(follower.id, { failureHooks: crashing });
    const fatal: Error[] = [];
    victim.on("fatal", (error) => fatal.push(error));
    for (let value = 0; value < 6; value += 1) await leader.propose(value);
    await waitFor(() => fatal.length > 0, "the crash");
    expect(fatal[0]?.message).toBe("crash at before-snapshot");
    expect((await storage.load()).snapshot).toBeUndefined();
    // The others go on without it.
    await leader.propose(6);
  });
});

describe("SynodNode: stepDown", () => {
  it("a leader told it no longer leads stops at once, fails what was in flight, and the cluster elects a leader and goes on", async () => {
    const cluster = await startCluster();
    const leader = await stableLeader(cluster);
    await leader.propose(1);
    const others = cluster.voters.filter((id) => id !== leader.id);
    cluster.network.isolate(leader.id, others);
    const inFlight = leader.propose(2);
    leader.stepDown();
    expect(leader.status().role).toBe("follower");
    await expect(inFlight).rejects.toBeInstanceOf(SynodError);
    await expect(leader.read("all")).rejects.toBeInstanceOf(NotLeaderError);
    cluster.network.heal();
    const next = await stableLeader(cluster);
    await next.propose(3);
    expect(cluster.machine(next.id).items).toContain(3);
  });
});

describe("SynodNode: gray failures", () => {
  /** A storage whose writes can be made slow, or made to hang, as a failing disk. */
  class FailingDisk extends MemoryStorage {
    delayMs = 0;
    private gate: Promise<void> | undefined;
    private open: (() => void) | undefined;
    stall(): void {
      this.gate = new Promise((resolve) => {
        this.open = resolve;
      });
    }
    resume(): void {
      this.open?.();
      this.gate = undefined;
    }
    /** Persists completed. */
    persisted = 0;
    override async persist(batch: PersistBatch): Promise<void> {
      await this.gate;
      if (this.delayMs > 0) await sleep(this.delayMs);
      await super.persist(batch);
      this.persisted += 1;
    }
  }

  async function diskCluster(extra: Partial<Config> = {}) {
    const network = new MemoryNetwork();
    const ids = ["a", "b", "c"];
    const disks = ids.map(() => new FailingDisk());
    const nodes = ids.map((id, index) => new SynodNode({ id, voters: ids, storage: disks[index] as FailingDisk, transport: network.transport(id), stateMachine: new ListMachine(), tickMs: TICK_MS, ...extra }) as Node);
    started.push(...nodes);
    await Promise.all(nodes.map((node) => node.start()));
    const leader = await waitFor(() => nodes.find((node) => node.status().role === "leader"), "a leader");
    await leader.propose(1);
    return { nodes, leader, disk: disks[nodes.indexOf(leader)] as FailingDisk };
  }

  it("a leader whose disk stops answering loses leadership within a few election timeouts, and writes resume on a new leader (time printed)", async () => {
    const { nodes, leader, disk } = await diskCluster();
    disk.stall();
    const stalledAt = performance.now();
    const stuck = leader.propose(2).catch((error: unknown) => error);
    const successor = await waitFor(() => nodes.find((node) => node !== leader && node.status().role === "leader"), "a new leader");
    await successor.propose(3);
    const failoverMs = performance.now() - stalledAt;
    console.log(`disk stalled on the leader: a write succeeded on ${successor.id} ${failoverMs.toFixed(0)} ms later (election timeout ${10 * TICK_MS}–${20 * TICK_MS} ms, lease ${10 * TICK_MS} ms)`);
    expect(leader.status().role).not.toBe("leader");
    expect(failoverMs).toBeLessThan(2_000);
    disk.resume();
    // The write caught in the stall either failed with a typed error, or was chosen through the new leader (its
    // followers had accepted it): applied once either way.
    await stuck;
    // Leadership may move again as the old leader comes back: write on whoever leads.
    for (let attempt = 0; ; attempt += 1) {
      const current = await waitFor(() => nodes.find((node) => node.status().role === "leader"), "a leader");
      const written = await current.propose(4).then(
        () => true,
        (error: unknown) => {
          if (attempt >= 20 || !(error instanceof SynodError)) throw error;
          return false;
        },
      );
      if (written) break;
    }
    expect(successor.readLocal("all").value.filter((item) => item === 2).length).toBeLessThanOrEqual(1);
    await waitFor(() => {
      const items = leader.readLocal("all").value;
      return items.includes(3) && items.includes(4);
    }, "the old leader to catch up once its disk answers");
  });

  it("a follower whose disk stalls does not hold up commits: the leader and the other follower commit without it", async () => {
    const network = new MemoryNetwork();
    const ids = ["a", "b", "c"];
    const disks = ids.map(() => new FailingDisk());
    const nodes = ids.map((id, index) => new SynodNode({ id, voters: ids, storage: disks[index] as FailingDisk, transport: network.transport(id), stateMachine: new ListMachine(), tickMs: TICK_MS }) as Node);
    started.push(...nodes);
    await Promise.all(nodes.map((node) => node.start()));
    const leader = await stableLeader({ nodes } as Cluster);
    await leader.propose(0);
    const slow = nodes.find((node) => node !== leader) as Node;
    const slowDisk = disks[nodes.indexOf(slow)] as FailingDisk;
    slowDisk.stall();
    const before = slowDisk.persisted;
    for (let value = 1; value <= 10; value += 1) await leader.propose(value);
    // Ten writes committed while the stalled follower made nothing durable.
    expect(slowDisk.persisted).toBe(before);
    expect(leader.readLocal("all").value).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    slowDisk.resume();
    await waitFor(() => slow.readLocal("all").value.length === 11, "the slow follower to catch up once its disk answers");
  });

  it("a leader whose disk is slow hands leadership to a follower on its own, and writes go on there", async () => {
    // Writes of 35 ms: heartbeats still beat the 50–100 ms election timeout, so only the leader's own watch moves it.
    const { nodes, leader, disk } = await diskCluster({ maxPersistMs: 25 });
    const events: { reason: string; ms: number; handedTo: string | undefined }[] = [];
    leader.on("step-down", (event) => events.push(event));
    disk.delayMs = 35;
    for (let value = 2; value < 30 && events.length === 0; value += 1) await leader.propose(value).catch(() => undefined);
    await waitFor(() => events.length > 0, "the slow leader to hand over");
    expect(events[0]?.reason).toBe("slow-disk");
    expect(events[0]?.ms).toBeGreaterThanOrEqual(25);
    const successor = await waitFor(() => nodes.find((node) => node !== leader && node.status().role === "leader"), "a new leader");
    expect(events[0]?.handedTo).toBe(successor.id);
    await successor.propose(100);
  });

  it("a leader whose applying is slow hands leadership to a follower on its own, and writes go on there", async () => {
    const cluster = await startCluster({ maxApplyMs: 15 });
    const leader = await stableLeader(cluster);
    const events: { reason: string; ms: number; handedTo: string | undefined }[] = [];
    leader.on("step-down", (event) => events.push(event));
    // Its state machine falls behind: every apply takes 20 ms (the followers' take no time).
    const machine = cluster.machine(leader.id);
    const apply = machine.apply.bind(machine);
    machine.apply = (op: number) => {
      const until = performance.now() + 20;
      while (performance.now() < until);
      return apply(op);
    };
    for (let value = 0; value < 30 && events.length === 0; value += 1) await leader.propose(value).catch(() => undefined);
    await waitFor(() => events.length > 0, "the slow leader to hand over");
    expect(events[0]).toMatchObject({ reason: "slow-apply" });
    expect(events[0]?.ms).toBeGreaterThanOrEqual(15);
    const successor = await waitFor(() => cluster.nodes.find((node) => node !== leader && node.status().role === "leader"), "a new leader");
    await successor.propose(100);
  });
});
