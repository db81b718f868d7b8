/**
 * The leader's housekeeping on a real (single-replica, in-memory) node:
 * leases expire on an idle log, history is compacted behind the retention,
 * and a follower never proposes.
 */
import { MemoryNetwork, MemoryStorage, SynodNode } from "@synod/core";
import { afterEach, describe, expect, it } from "vitest";
import { Housekeeper, KvMachine, type KvNode } from "../src/index.js";

const running: { stop(): unknown }[] = [];
afterEach(async () => {
  for (const item of running.splice(0).reverse()) await item.stop();
});

async function soloKv(): Promise<{ node: KvNode; machine: KvMachine }> {
  const machine = new KvMachine();
  const node: KvNode = new SynodNode({ id: "solo", voters: ["solo"], storage: new MemoryStorage(), transport: new MemoryNetwork().transport("solo"), stateMachine: machine, tickMs: 5 });
  running.push(node);
  await node.start();
  await expect.poll(() => node.status().role, { timeout: 5_000 }).toBe("leader");
  return { node, machine };
}

const silent = { warn: () => undefined };

describe("Housekeeper", () => {
  it("expires a lease on an idle log: its key goes without any other command", async () => {
    const { node, machine } = await soloKv();
    running.push(new Housekeeper(node, machine, silent, { intervalMs: 10, retainRevisions: 0 }));
    await node.propose({ type: "lease-grant", id: 7, ttlMs: 150 });
    await node.propose({ type: "put", key: "session/a", value: "x", lease: 7 });
    const putAt = performance.now();
    expect(machine.query({ type: "get", key: "session/a" })).toMatchObject({ kv: { value: "x" } });
    await expect.poll(() => machine.query({ type: "get", key: "session/a" }), { timeout: 3_000, interval: 10 }).toMatchObject({ kv: null });
    // Never early: log time only moves with the leader's clock.
    expect(performance.now() - putAt).toBeGreaterThanOrEqual(140);
    expect(machine.status().leaseCount).toBe(0);
  });

  it("without a housekeeper an idle log keeps the expired lease (the control)", async () => {
    const { node, machine } = await soloKv();
    await node.propose({ type: "lease-grant", id: 7, ttlMs: 50 });
    await node.propose({ type: "put", key: "session/a", value: "x", lease: 7 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(machine.query({ type: "get", key: "session/a" })).toMatchObject({ kv: { value: "x" } });
  });

  it("compacts history older than the retention", async () => {
    const { node, machine } = await soloKv();
    running.push(new Housekeeper(node, machine, silent, { intervalMs: 10, retainRevisions: 5, compactEveryMs: 20 }));
    for (let index = 0; index < 20; index += 1) await node.propose({ type: "put", key: "k", value: `${index}` });
    const revision = machine.revision;
    await expect.poll(() => machine.status().compactRevision, { timeout: 3_000, interval: 10 }).toBeGreaterThanOrEqual(revision - 5);
    expect(machine.query({ type: "get", key: "k", revision: revision - 10 })).toMatchObject({ type: "error", error: { code: "COMPACTED" } });
    expect(machine.query({ type: "get", key: "k", revision: revision - 2 })).toMatchObject({ kv: { value: "17" } });
  });
});
