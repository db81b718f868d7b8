import { describe, expect, it } from "vitest";
import { MemoryNetwork, MemoryStorage, type NodeId, type SnapshotHandle, type SnapshotProgress, SynodNode, crc32c, decodeSnapshot, encodeSnapshot, fromBase64, toBase64 } from "../src/index.js";

import { portableFromBase64, portableToBase64 } from "../src/bytes.js";
import { ListMachine } from "../src/testing/index.js";
import { waitFor } from "./wait.js";


/** a, b, c vote; d starts with the same bootstrap configuration and waits to be added. Logs are compacted hard. */
function cluster(chunkBytes: number) {
  const network = new MemoryNetwork();
  const ids = ["a", "b", "c", "d"];
  const machines = new Map(ids.map((id) => [id, new ListMachine()]));
  const storages = new Map(ids.map((id) => [id, new MemoryStorage()]));
  const makeNode = (id: NodeId) =>
    new SynodNode({
      id,
      voters: ["a", "b", "c"],
      storage: storages.get(id) as MemoryStorage,
      transport: network.transport(id),
      stateMachine: machines.get(id) as ListMachine,
      tickMs: 5,
      snapshotEverySlots: 10,
      snapshotTailSlots: 2,
      snapshotChunkBytes: chunkBytes,
      replica: { alpha: 4 },
    });
  const nodes = new Map(ids.map((id) => [id, makeNode(id)]));
  /** Stops `id` and starts it again on the same storage, with a fresh state machine (as a restarted process). */
  const restart = async (id: NodeId) => {
    await (nodes.get(id) as SynodNode).stop();
    (storages.get(id) as MemoryStorage).reopen();
    machines.set(id, new ListMachine());
    nodes.set(id, makeNode(id));
    await (nodes.get(id) as SynodNode).start();
  };
  const node = (id: NodeId) => nodes.get(id) as SynodNode<number, number, number, "all", number[]>;
  const items = (id: NodeId) => (machines.get(id) as ListMachine).items;
  const leader = () => waitFor(() => [...nodes.values()].find((candidate) => candidate.status().role === "leader"));
  /** Writes 1..100 and waits until every voter has applied them and taken the same snapshots (so each can serve the same one). */
  const fillAndCompact = async (leader: SynodNode) => {
    for (let value = 1; value <= 100; value += 1) await leader.propose(value);
    await waitFor(() => (["a", "b", "c"].every((id) => items(id).length === 100) ? true : undefined));
    await waitFor(() => (["a", "b", "c"].every((id) => node(id).status().logStart === leader.status().logStart) ? true : undefined));
  };
  return { network, nodes, machines, storages, node, items, leader, restart, fillAndCompact, stop: () => Promise.all([...nodes.values()].map((each) => each.stop())) };
}

describe("snapshot transfer to a replica too far behind for the log", () => {
  it("a new learner fetches a snapshot in checksummed chunks, installs it in process, then applies the log after it", async () => {
    const c = cluster(64);
    await Promise.all([...c.nodes.values()].map((node) => node.start()));
    try {
      const leader = await c.leader();
      for (let value = 1; value <= 100; value += 1) await leader.propose(value);
      // The leader's log no longer starts at 0: d cannot be caught up from it.
      await waitFor(() => (leader.status().logStart > 0 ? true : undefined));
      const events: SnapshotProgress[] = [];
      c.node("d").on("snapshot", (event) => events.push(event));

      await leader.proposeConfig({ expected: -1, voters: ["a", "b", "c"], learners: ["d"] });
      await waitFor(() => (events.some((event) => event.kind === "installed") ? true : undefined));
      await leader.propose(101);
      await waitFor(() => (c.items("d").includes(101) ? true : undefined));

      const chunks = events.filter((event) => event.kind === "chunk");
      const installed = events.find((event) => event.kind === "installed");
      expect(installed?.kind === "installed" && installed.size).toBeGreaterThan(64 * 3);
      // Many chunks, in order, each at the offset where the last ended.
      expect(chunks.length).toBeGreaterThan(3);
      chunks.forEach((chunk, index) => expect(chunk.kind === "chunk" && chunk.offset).toBe(index * 64));
      // Installed by restoring the state machine, not by replaying the log from slot 0.
      const restored = (c.machines.get("d") as ListMachine).restored;
      expect(restored?.length).toBeGreaterThan(0);
      expect((c.machines.get("d") as ListMachine).applies).toBeLessThan(100);
      expect(c.items("d")).toEqual(c.items(leader.id));
      expect(events.filter((event) => event.kind === "rejected")).toEqual([]);
    } finally {
      await c.stop();
    }
  });

  it("a transfer cut off halfway goes on from another replica with the same snapshot, where it stopped", async () => {
    const c = cluster(32);
    await Promise.all([...c.nodes.values()].map((node) => node.start()));
    try {
      const leader = await c.leader();
      await c.fillAndCompact(leader);

      const events: SnapshotProgress[] = [];
      let cutFrom: NodeId | undefined;
      c.node("d").on("snapshot", (event) => {
        events.push(event);
        // After a few chunks, the replica sending them is cut off from d, both ways.
        if (event.kind === "chunk" && cutFrom === undefined && events.length === 5) {
          cutFrom = event.from;
          c.network.partition(event.from, "d");
          c.network.partition("d", event.from);
        }
      });
      await leader.proposeConfig({ expected: -1, voters: ["a", "b", "c"], learners: ["d"] });
      await waitFor(() => (events.some((event) => event.kind === "installed") ? true : undefined));

      const chunks = events.filter((event): event is Extract<SnapshotProgress, { kind: "chunk" }> => event.kind === "chunk");
      const after = chunks.filter((chunk) => chunk.from !== cutFrom);
      expect(cutFrom).toBeDefined();
      expect(after.length).toBeGreaterThan(0);
      // The next replica went on at the offset where the cut one stopped: nothing was fetched twice.
      expect(after[0]?.offset).toBe(5 * 32);
      expect(chunks.map((chunk) => chunk.offset)).toEqual(chunks.map((_, index) => index * 32));

      c.network.heal();
      await leader.propose(101);
      await waitFor(() => (c.items("d").includes(101) ? true : undefined));
      expect(c.items("d")).toEqual(c.items(leader.id));
    } finally {
      await c.stop();
    }
  });

  it("a receiver restarted halfway through a transfer goes on from the bytes its storage kept", async () => {
    const c = cluster(32);
    await Promise.all([...c.nodes.values()].map((node) => node.start()));
    try {
      const leader = await c.leader();
      await c.fillAndCompact(leader);

      const before: SnapshotProgress[] = [];
      let restarting: Promise<void> | undefined;
      c.node("d").on("snapshot", (event) => {
        before.push(event);
        if (event.kind === "chunk" && before.length === 6 && restarting === undefined) restarting = c.restart("d");
      });
      await leader.proposeConfig({ expected: -1, voters: ["a", "b", "c"], learners: ["d"] });
      await waitFor(() => restarting);
      await restarting;
      const kept = (await c.storages.get("d")?.load())?.incoming;
      const after: SnapshotProgress[] = [];
      c.node("d").on("snapshot", (event) => after.push(event));
      await waitFor(() => (after.some((event) => event.kind === "installed") ? true : undefined));

      expect(kept?.received).toBeGreaterThanOrEqual(6 * 32);
      // The restarted replica asked for the bytes after those it kept, not for the snapshot from the start.
      const resumed = after.find((event) => event.kind === "resumed");
      expect(resumed?.kind === "resumed" && resumed.offset).toBe(kept?.received);
      const firstChunk = after.find((event) => event.kind === "chunk");
      expect(firstChunk?.kind === "chunk" && firstChunk.offset).toBe(kept?.received);
      expect(after.filter((event) => event.kind === "rejected")).toEqual([]);
      await leader.propose(101);
      await waitFor(() => (c.items("d").includes(101) ? true : undefined));
      expect(c.items("d")).toEqual(c.items(leader.id));
    } finally {
      await c.stop();
    }
  });
});

describe("snapshot bytes", () => {
  it("CRC32C (eight bytes a step) equals the bit-by-bit definition at every length and offset, and both base64 codecs agree with Node's", () => {
    const bitwise = (bytes: Uint8Array): number => {
      let crc = 0xffffffff;
      for (const byte of bytes) {
        crc ^= byte;
        for (let bit = 0; bit < 8; bit += 1) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
      }
      return ~crc >>> 0;
    };
    const bytes = Uint8Array.from({ length: 300 }, (_, index) => (index * 167 + 13) & 0xff);
    for (let length = 0; length <= 40; length += 1) {
      for (const offset of [0, 1, 3, 7]) {
        const part = bytes.subarray(offset, offset + length);
        expect(crc32c(part), `length ${length} offset ${offset}`).toBe(bitwise(part));
        // Continuing from a CRC is the CRC of the concatenation.
        expect(crc32c(part.subarray(length >> 1), crc32c(part.subarray(0, length >> 1)))).toBe(bitwise(part));
      }
    }
    for (const length of [0, 1, 2, 3, 4, 5, 299, 300]) {
      const part = bytes.subarray(0, length);
      const expected = Buffer.from(part).toString("base64");
      expect(portableToBase64(part)).toBe(expected);
      expect(toBase64(part)).toBe(expected);
      expect([...portableFromBase64(expected)]).toEqual([...part]);
      expect([...fromBase64(expected)]).toEqual([...part]);
    }
    for (const bad of ["a$==", "QQ", "QQ=", "Q===", "QQ==QQ==", " QQ=="]) {
      expect(() => fromBase64(bad), bad).toThrow(RangeError);
      expect(() => portableFromBase64(bad), bad).toThrow(RangeError);
    }
  });

  it("CRC32C and base64 match their standard values; a snapshot survives encoding, and a damaged one is refused", () => {
    expect(crc32c(new TextEncoder().encode("123456789"))).toBe(0xe3069283);
    const bytes = Uint8Array.from({ length: 1000 }, (_, index) => (index * 37) & 0xff);
    expect(toBase64(bytes)).toBe(Buffer.from(bytes).toString("base64"));
    for (const length of [0, 1, 2, 3, 4]) expect(fromBase64(toBase64(bytes.subarray(0, length)))).toEqual(bytes.subarray(0, length));
    expect(() => fromBase64("a$==")).toThrow(RangeError);

    const snapshot = {
      handle: { slot: 7, time: 1234, configs: [{ id: -1, voters: ["a"], learners: [] }], sessions: [] },
      data: Uint8Array.of(1, 2, 3),
    };
    const encoded = encodeSnapshot(snapshot);
    expect(encoded.checksum).toBe(crc32c(encoded.bytes));
    expect(decodeSnapshot(encoded.bytes)).toEqual(snapshot);
    const damaged = encoded.bytes.slice();
    damaged[6] = 0x7b; // inside the handle JSON
    expect(() => decodeSnapshot(damaged)).toThrow(/invalid snapshot/);
  });
});

describe("snapshot policy", () => {
  it("takes a snapshot once enough bytes of log were applied, whatever the slot count", async () => {
    const network = new MemoryNetwork();
    const storage = new MemoryStorage();
    const node = new SynodNode({
      id: "a",
      voters: ["a"],
      storage,
      transport: network.transport("a"),
      stateMachine: new ListMachine(),
      tickMs: 5,
      snapshotEverySlots: 0,
      snapshotEveryBytes: 2_000,
    });
    await node.start();
    try {
      await waitFor(() => (node.status().role === "leader" ? true : undefined));
      // Each proposal is a slot of well under 200 estimated bytes: a few do not reach the threshold...
      for (let value = 0; value < 3; value += 1) await node.propose(value);
      expect((await storage.load()).snapshot).toBeUndefined();
      // ...and enough of them do.
      for (let value = 3; value < 60; value += 1) await node.propose(value);
      let snapshot = (await storage.load()).snapshot;
      for (let tries = 0; snapshot === undefined && tries < 200; tries += 1) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        snapshot = (await storage.load()).snapshot;
      }
      expect(snapshot?.handle.slot).toBeGreaterThan(3);
    } finally {
      await node.stop();
    }
  });
});

/** A ListMachine that keeps its state on a "disk" that outlives the process: it checkpoints itself. */
class DiskListMachine extends ListMachine {
  constructor(private readonly disk: { items?: number[]; handle?: SnapshotHandle }) {
    super();
  }

  checkpoint(handle: SnapshotHandle): void {
    this.disk.items = [...this.items];
    this.disk.handle = handle;
  }

  recover(): SnapshotHandle | undefined {
    if (this.disk.handle === undefined) return undefined;
    this.items = [...(this.disk.items ?? [])];
    return this.disk.handle;
  }
}

describe("a state machine that keeps its state on disk", () => {
  it("checkpoints instead of writing snapshot files, restarts from its checkpoint without replaying the log, and still serves a replica too far behind", async () => {
    const network = new MemoryNetwork();
    const disks = new Map<NodeId, { items?: number[]; handle?: SnapshotHandle }>(["a", "b", "c"].map((id) => [id, {}]));
    const storages = new Map(["a", "b", "c"].map((id) => [id, new MemoryStorage()]));
    const make = (id: NodeId) =>
      new SynodNode({
        id,
        voters: ["a", "b", "c"],
        storage: storages.get(id) as MemoryStorage,
        transport: network.transport(id),
        stateMachine: new DiskListMachine(disks.get(id) as { items?: number[]; handle?: SnapshotHandle }),
        tickMs: 5,
        snapshotEverySlots: 10,
        snapshotTailSlots: 2,
        snapshotChunkBytes: 64,
      });
    let nodes = ["a", "b", "c"].map(make);
    await Promise.all(nodes.map((node) => node.start()));
    try {
      const leader = await waitFor(() => nodes.find((node) => node.status().role === "leader"));
      for (let value = 1; value <= 60; value += 1) await leader.propose(value);
      await waitFor(() => (nodes.every((node) => (disks.get(node.id)?.handle?.slot ?? -1) >= 40) ? true : undefined));
      // No snapshot file: the state machine made its state durable itself.
      expect((await (storages.get("a") as MemoryStorage).load()).snapshot).toBeUndefined();

      // Every process restarts on its storage and its disk.
      await Promise.all(nodes.map((node) => node.stop()));
      for (const storage of storages.values()) storage.reopen();
      const machines = new Map<NodeId, DiskListMachine>();
      nodes = ["a", "b", "c"].map((id) => {
        const node = make(id);
        machines.set(id, (node as unknown as { config: { stateMachine: DiskListMachine } }).config.stateMachine);
        return node;
      });
      await Promise.all(nodes.map((node) => node.start()));
      for (const [id, machine] of machines) {
        const handle = disks.get(id)?.handle as SnapshotHandle;
        // It went on from its checkpoint: the slots before it were not applied again.
        expect(nodes.find((node) => node.id === id)?.status().appliedThrough).toBeGreaterThanOrEqual(handle.slot);
        expect(machine.applies).toBeLessThanOrEqual(60 - (disks.get(id)?.items?.length ?? 0));
      }
      const next = await waitFor(() => nodes.find((node) => node.status().role === "leader")); 
      await next.propose(61);
      await waitFor(() => ([...machines.values()].every((machine) => machine.items.length === 61) ? true : undefined));
      for (const machine of machines.values()) expect(machine.items).toEqual(Array.from({ length: 61 }, (_, index) => index + 1));

      // A new replica, too far behind for the compacted log, gets a snapshot made in memory for it.
      const joinerMachine = new ListMachine();
      const joiner = new SynodNode({ id: "d", voters: [], storage: new MemoryStorage(), transport: network.transport("d"), stateMachine: joinerMachine, tickMs: 5, snapshotChunkBytes: 64 });
      nodes.push(joiner);
      const installed: SnapshotProgress[] = [];
      joiner.on("snapshot", (event) => installed.push(event));
      await joiner.start();
      await next.proposeConfig({ expected: next.status().config.id, voters: ["a", "b", "c"], learners: ["d"] });
      await waitFor(() => (installed.some((event) => event.kind === "installed") ? true : undefined));
      await next.propose(62);
      await waitFor(() => (joinerMachine.items.includes(62) ? true : undefined));
      expect(joinerMachine.items).toEqual(Array.from({ length: 62 }, (_, index) => index + 1));
    } finally {
      await Promise.all(nodes.map((node) => node.stop()));
    }
  });
});
