/**
 * "Persist before send", checked at the wire: a 3-node SynodNode cluster
 * over MemoryNetwork, each node on its own FileStorage in a temporary
 * directory. Each node's transport is wrapped; whenever it sends a `promise`
 * or a non-empty `accepted`, the wrapper checks, at that very moment, that
 * what the message vouches for is durable in the sender's storage:
 *
 * - in memory: `load()` is called synchronously in `send` (FileStorage
 *   updates the image it returns only after the group commit's fdatasync,
 *   and records a promise in the metadata before `persist` resolves), and
 * - on disk: the sender's files are read synchronously in `send`, copied to a
 *   scratch directory afterwards, and recovered there with FileStorage.open,
 *   as a crash at that instant would find them.
 *
 * For a promise the recovered promised ballot must be at least the message's
 * ballot; for accepted, every slot must hold a record at a ballot at least the
 * message's (or a chosen one, or lie below the log start, i.e. in a snapshot).
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  MemoryNetwork,
  SeededRandom,
  type Storage,
  type StoredState,
  SynodNode,
  type Transport,
  compareBallots,
  formatBallot,
} from "@synod/core";
import { afterAll, describe, expect, it } from "vitest";
import { ListMachine } from "@synod/core/testing";
import { FileStorage } from "../src/index.js";

type Message = Parameters<Transport["send"]>[0];


type Node = SynodNode<number, number, number, "all", number[]>;

const VOTERS: readonly string[] = ["a", "b", "c"];
const TICK_MS = 5;
const root = mkdtempSync(join(tmpdir(), "synod-pbs-"));
/** Every node started, stopped at the end whatever happened. */
const started: Node[] = [];
afterAll(async () => {
  await Promise.all(started.map((node) => node.stop().catch(() => undefined)));
  rmSync(root, { recursive: true, force: true });
});

async function waitFor<T>(probe: () => T | undefined | false, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** What a message vouches for, checked against a stored state; undefined when it holds. */
function violation(message: Message, state: StoredState): string | undefined {
  if (message.type === "promise") {
    if (compareBallots(state.promised, message.ballot) < 0) {
      return `promise ${formatBallot(message.ballot)} sent while the durable promise is ${formatBallot(state.promised)}`;
    }
    return undefined;
  }
  if (message.type !== "accepted") return undefined;
  const bySlot = new Map(state.records.map((record) => [record.slot, record]));
  for (const slot of message.slots) {
    if (slot < state.logStart) continue;
    const record = bySlot.get(slot);
    if (record === undefined) return `accepted ${formatBallot(message.ballot)} for slot ${slot}, which is not durable`;
    if (!record.chosen && compareBallots(record.ballot, message.ballot) < 0) {
      return `accepted ${formatBallot(message.ballot)} for slot ${slot}, durable only at ${formatBallot(record.ballot)}`;
    }
  }
  return undefined;
}

const vouches = (message: Message): boolean => message.type === "promise" || (message.type === "accepted" && message.slots.length > 0);

interface Harness {
  readonly network: MemoryNetwork;
  readonly nodes: Map<string, Node>;
  readonly violations: string[];
  readonly counts: { promiseMemory: number; acceptedMemory: number; acceptedSlots: number; promiseDisk: number; acceptedDisk: number };
  startNode(id: string, seed: number): Promise<Node>;
  stableLeader(among: readonly string[]): Promise<Node>;
  proposeMany(leader: Node, from: number, count: number): Promise<void>;
  /** Stops every node, then waits for every check. */
  finish(): Promise<void>;
}

/**
 * A cluster whose transports check every promise and accepted. `leaky`
 * (the negative control) wraps each FileStorage so that `persist` resolves at
 * once and writes in the background: the checks must catch it.
 */
function harness(directory: string, leaky = false): Harness {
  const network = new MemoryNetwork();
  const nodes = new Map<string, Node>();
  const storages = new Map<string, FileStorage>();
  const directories = new Map(VOTERS.map((id) => [id, join(directory, id)]));
  const violations: string[] = [];
  const counts = { promiseMemory: 0, acceptedMemory: 0, acceptedSlots: 0, promiseDisk: 0, acceptedDisk: 0 };
  /** Disk checks run one after another, after the send that captured the files. */
  let diskChecks: Promise<void> = Promise.resolve();
  let scratchCounter = 0;

  const captureFiles = (from: string): Map<string, Buffer> => {
    // Segments and snapshots first, the metadata last: compaction records a new first segment before deleting
    // the old ones, so files read in this order always recover (a file deleted meanwhile is skipped).
    const files = new Map<string, Buffer>();
    const names = readdirSync(from).filter((name) => !name.endsWith(".tmp"));
    for (const name of [...names.filter((name) => name !== "meta"), "meta"]) {
      try {
        files.set(name, readFileSync(join(from, name)));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      }
    }
    return files;
  };

  const check = (id: string, message: Message): void => {
    const storage = storages.get(id) as FileStorage;
    // In memory: load() computes its answer synchronously, at this instant.
    void storage.load().then(
      (state) => {
        const problem = violation(message, state);
        if (problem !== undefined) violations.push(`${id} (memory): ${problem}`);
        if (message.type === "promise") counts.promiseMemory += 1;
        else if (message.type === "accepted") {
          counts.acceptedMemory += 1;
          counts.acceptedSlots += message.slots.length;
        }
      },
      (error: unknown) => violations.push(`${id}: load failed while sending ${message.type}: ${String(error)}`),
    );
    // On disk: the files as a crash now would leave them, recovered later in a scratch directory.
    const files = captureFiles(directories.get(id) as string);
    diskChecks = diskChecks.then(async () => {
      const scratch = join(directory, `scratch-${scratchCounter++}`);
      mkdirSync(scratch);
      for (const [name, bytes] of files) writeFileSync(join(scratch, name), bytes);
      try {
        const recovered = await FileStorage.open(scratch, { nodeId: id, expectExisting: true });
        const state = await recovered.load();
        await recovered.close();
        const problem = violation(message, state);
        if (problem !== undefined) violations.push(`${id} (disk): ${problem}`);
        if (message.type === "promise") counts.promiseDisk += 1;
        else counts.acceptedDisk += 1;
      } catch (error) {
        violations.push(`${id}: its files at the ${message.type} did not recover: ${String(error)}`);
      } finally {
        rmSync(scratch, { recursive: true, force: true });
      }
    });
  };

  const checkedTransport = (id: string): Transport => {
    const inner = network.transport(id);
    return {
      id,
      onMessage: (handler) => inner.onMessage(handler),
      close: () => inner.close(),
      send: (message) => {
        if (vouches(message)) check(id, message);
        inner.send(message);
      },
    };
  };

  const leakyStorage = (inner: FileStorage): Storage => ({
    load: () => inner.load(),
    persist: (batch) => {
      void inner.persist(batch).catch(() => undefined);
      return Promise.resolve();
    },
    writeSnapshot: (handle, data) => inner.writeSnapshot(handle, data),
    receiveSnapshot: (identity) => inner.receiveSnapshot(identity),
    close: () => inner.close(),
  });

  const startNode = async (id: string, seed: number): Promise<Node> => {
    const storage = await FileStorage.open(directories.get(id) as string, { nodeId: id, segmentBytes: 8 * 1024, expectExisting: storages.has(id) });
    storages.set(id, storage);
    const node: Node = new SynodNode({
      id,
      voters: VOTERS,
      storage: leaky ? leakyStorage(storage) : storage,
      transport: checkedTransport(id),
      stateMachine: new ListMachine(),
      tickMs: TICK_MS,
      random: new SeededRandom(seed),
      // One command per slot, so that many slots (and accepted replies) go by.
      replica: { maxBatchCommands: 1 },
      snapshotEverySlots: 15,
      // Compaction truncates the log, but keeps enough of it for a cut-off node to catch up from.
      snapshotTailSlots: 40,
    });
    nodes.set(id, node);
    started.push(node);
    await node.start();
    return node;
  };

  return {
    network,
    nodes,
    violations,
    counts,
    startNode,
    stableLeader: (among) =>
      waitFor(() => {
        const leaders = among.map((id) => nodes.get(id) as Node).filter((node) => node.status().role === "leader");
        const leader = leaders[0];
        if (leaders.length !== 1 || leader === undefined) return undefined;
        return among.every((id) => (nodes.get(id) as Node).status().leader === leader.id) ? leader : undefined;
      }, `a stable leader among ${among.join(",")}`),
    proposeMany: async (leader, from, count) => {
      // Small groups, so that accepts (and their replies) carry few slots each.
      for (let start = from; start < from + count; start += 3) {
        await Promise.all(Array.from({ length: Math.min(3, from + count - start) }, (_, index) => leader.propose(start + index)));
      }
    },
    finish: async () => {
      await Promise.all([...nodes.values()].map((node) => node.stop()));
      await diskChecks;
      await new Promise((resolve) => setTimeout(resolve, 0));
    },
  };
}

describe("persist before send, on FileStorage", () => {
  it("every promise and accepted a node sends is already durable in its files, through a leader change and a restart", async () => {
    const cluster = harness(join(root, "checked"));
    const { nodes, network, counts, violations } = cluster;
    for (const [index, id] of VOTERS.entries()) await cluster.startNode(id, 100 + index);
    let leader = await cluster.stableLeader(VOTERS);
    await cluster.proposeMany(leader, 0, 40);

    // A leader change: cut the leader off, elect another, write through it, then heal.
    const old = leader.id;
    const others = VOTERS.filter((id) => id !== old);
    network.isolate(old, VOTERS);
    leader = await cluster.stableLeader(others);
    expect(leader.id).not.toBe(old);
    await cluster.proposeMany(leader, 100, 30);
    network.heal();
    await waitFor(() => (nodes.get(old) as Node).status().leader === leader.id, "the old leader to follow");
    await waitFor(() => (nodes.get(old) as Node).readLocal("all").value.length >= 70, "the old leader to catch up");

    // A follower restarts on its files and catches up.
    const follower = others.find((id) => id !== leader.id) as string;
    await (nodes.get(follower) as Node).stop();
    await cluster.startNode(follower, 300);
    await cluster.proposeMany(leader, 200, 30);
    await waitFor(
      () => VOTERS.every((id) => (nodes.get(id) as Node).readLocal("all").value.length >= 100),
      "every node to apply everything",
    ).catch((error: unknown) => {
      const states = VOTERS.map((id) => `${id}: ${(nodes.get(id) as Node).readLocal("all").value.length} ops, ${JSON.stringify((nodes.get(id) as Node).status())}`);
      throw new Error(`${String(error)}: ${states.join("; ")}`);
    });

    await cluster.finish();
    expect(violations).toEqual([]);
    expect(counts.promiseMemory, JSON.stringify(counts)).toBeGreaterThanOrEqual(2);
    expect(counts.promiseDisk, JSON.stringify(counts)).toBe(counts.promiseMemory);
    expect(counts.acceptedMemory, JSON.stringify(counts)).toBeGreaterThanOrEqual(30);
    // At least one follower accepted each of the ~100 slots (usually both).
    expect(counts.acceptedSlots, JSON.stringify(counts)).toBeGreaterThanOrEqual(100);
    expect(counts.acceptedDisk, JSON.stringify(counts)).toBe(counts.acceptedMemory);
    console.log(`persist-before-send: ${JSON.stringify(counts)} checks, no violation`);
  });

  it("the check catches a storage that acknowledges before the write is durable (negative control)", async () => {
    const cluster = harness(join(root, "leaky"), true);
    for (const [index, id] of VOTERS.entries()) await cluster.startNode(id, 200 + index);
    const leader = await cluster.stableLeader(VOTERS);
    await cluster.proposeMany(leader, 0, 20);
    await cluster.finish();
    expect(cluster.violations.length, JSON.stringify(cluster.counts)).toBeGreaterThan(0);
    expect(cluster.violations.join("\n")).toMatch(/not durable|durable promise is/);
  });
});
