import { describe, expect, it } from "vitest";
import { type Ballot, ZERO_BALLOT } from "../ballot.js";
import { crc32c } from "../bytes.js";
import { InvalidInputError } from "../errors.js";
import { type Snapshot, collectChunks } from "../host.js";
import type { PersistBatch } from "../replica.js";
import { BufferedSnapshot, snapshotData } from "../snapshot-stream.js";
import type { Storage, StoredSnapshot, StoredState } from "../storage.js";
import type { SlotRecord } from "../values.js";

/** How the suite gets a storage, and the same storage again after a "restart". */
export interface StorageHarness {
  /** A new, empty storage. */
  create(): Promise<Storage>;
  /** Closes `storage` and opens it again on the same durable data, as a restarted process would. */
  reopen(storage: Storage): Promise<Storage>;
  /** Optional clean-up after each test. */
  destroy?(storage: Storage): Promise<void>;
}

const ballot = (round: number, node: string): Ballot => ({ round, node });
const record = (slot: number, round: number, value: string, chosen = false): SlotRecord => ({
  slot,
  ballot: ballot(round, "a"),
  value: { type: "batch", time: slot, commands: [{ session: "s", seq: slot, body: { type: "op", op: value } }] },
  chosen,
});
const batch = (parts: Partial<PersistBatch>): PersistBatch => ({ promised: undefined, records: [], chosen: [], truncateBefore: undefined, ...parts });
const snapshot = (slot: number, dataBytes = 4): Snapshot => ({
  handle: { slot, time: slot, configs: [{ id: -1, voters: ["a", "b", "c"], learners: [] }], sessions: [{ session: "s", lastSeq: slot, lastOutcome: { ok: true, result: slot }, lastActive: slot }] },
  data: Uint8Array.from({ length: dataBytes }, (_, index) => (index * 31 + slot) % 256),
});
/** `data` in pieces of `size` bytes, as a state machine streams it. */
function* pieces(data: Uint8Array, size: number): Generator<Uint8Array> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
}
/** A stored snapshot's encoding, read back in ranges of `size`. */
async function encodingOf(stored: StoredSnapshot, size = 1000): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (let offset = 0; offset < stored.size; offset += size) parts.push(await stored.read(offset, size));
  return collectChunks(parts);
}

/**
 * The assertions every `Storage` must pass (in the manner of automerge-repo's
 * `runStorageAdapterTests`). Call it from a vitest file of the adapter:
 * `runStorageConformance("storage-fs", harness)`.
 */
export function runStorageConformance(name: string, harness: StorageHarness): void {
  async function withStorage(body: (storage: Storage) => Promise<Storage | void>): Promise<void> {
    let storage = await harness.create();
    try {
      storage = (await body(storage)) ?? storage;
    } finally {
      await harness.destroy?.(storage);
    }
  }

  describe(`Storage conformance: ${name}`, () => {
    it("starts empty", () =>
      withStorage(async (storage) => {
        const state = await storage.load();
        expect(state.promised).toEqual(ZERO_BALLOT);
        expect(state.records).toEqual([]);
        expect(state.logStart).toBe(0);
        expect(state.snapshot).toBeUndefined();
        expect(state.rebuilding ?? false).toBe(false);
      }));

    it("keeps the promised ballot and slot records across a restart", () =>
      withStorage(async (first) => {
        await first.persist(batch({ promised: ballot(3, "b"), records: [record(0, 3, "x"), record(1, 3, "y", true)] }));
        const storage = await harness.reopen(first);
        const state = await storage.load();
        expect(state.promised).toEqual(ballot(3, "b"));
        expect(state.records).toEqual([record(0, 3, "x"), record(1, 3, "y", true)]);
        return storage;
      }));

    it("a later record for a slot replaces an earlier one, and records come back in slot order", () =>
      withStorage(async (first) => {
        await first.persist(batch({ records: [record(5, 1, "old"), record(2, 1, "two")] }));
        await first.persist(batch({ records: [record(5, 2, "new", true)] }));
        const storage = await harness.reopen(first);
        const state = await storage.load();
        expect(state.records).toEqual([record(2, 1, "two"), record(5, 2, "new", true)]);
        return storage;
      }));

    it("a chosen mark marks the slot's record chosen, value unchanged, and survives a restart", () =>
      withStorage(async (first) => {
        await first.persist(batch({ records: [record(0, 1, "x"), record(1, 1, "y")] }));
        await first.persist(batch({ chosen: [0, 1] }));
        await first.persist(batch({ chosen: [9] })); // a slot it does not hold: ignored
        const storage = await harness.reopen(first);
        expect((await storage.load()).records).toEqual([record(0, 1, "x", true), record(1, 1, "y", true)]);
        return storage;
      }));

    it("a batch without a promise keeps the promise it had", () =>
      withStorage(async (first) => {
        await first.persist(batch({ promised: ballot(7, "c") }));
        await first.persist(batch({ records: [record(0, 7, "x")] }));
        const storage = await harness.reopen(first);
        expect((await storage.load()).promised).toEqual(ballot(7, "c"));
        return storage;
      }));

    it("truncation drops records below the slot and moves logStart", () =>
      withStorage(async (first) => {
        await first.persist(batch({ records: [0, 1, 2, 3, 4].map((slot) => record(slot, 1, `v${slot}`, true)) }));
        await first.persist(batch({ truncateBefore: 3 }));
        const storage = await harness.reopen(first);
        const state = await storage.load();
        expect(state.logStart).toBe(3);
        expect(state.records.map((r) => r.slot)).toEqual([3, 4]);
        return storage;
      }));

    it("writes snapshots from chunks, atomically, and returns the latest, read in ranges", () =>
      withStorage(async (first) => {
        await first.writeSnapshot(snapshot(10).handle, [snapshot(10).data]);
        const written = await first.writeSnapshot(snapshot(20, 5000).handle, pieces(snapshot(20, 5000).data, 333));
        const expected = new BufferedSnapshot(snapshot(20, 5000).handle, snapshot(20, 5000).data);
        expect(written.size).toBe(expected.size);
        expect(written.checksum).toBe(expected.checksum);
        const storage = await harness.reopen(first);
        const stored = (await storage.load()).snapshot as StoredSnapshot;
        expect(stored.handle).toEqual(snapshot(20).handle);
        expect(stored.checksum).toBe(expected.checksum);
        const encoding = await encodingOf(stored, 777);
        expect(crc32c(encoding)).toBe(expected.checksum);
        expect([...(await collectChunks(snapshotData(stored, 1024)))]).toEqual([...snapshot(20, 5000).data]);
        expect((await stored.read(stored.size, 10)).length).toBe(0);
        return storage;
      }));

    it("receives a snapshot in pieces, keeps the pieces across a restart, and goes on from them", () =>
      withStorage(async (first) => {
        const source = new BufferedSnapshot(snapshot(30, 9000).handle, snapshot(30, 9000).data);
        const identity = { slot: 30, checksum: source.checksum, size: source.size };
        const encoding = await encodingOf(source);
        const receiving = await first.receiveSnapshot(identity);
        await receiving.append(encoding.subarray(0, 4000));
        const storage = await harness.reopen(first);
        const state = await storage.load();
        expect(state.incoming).toEqual({ ...identity, received: 4000 });
        expect(state.snapshot).toBeUndefined();
        const resumed = await storage.receiveSnapshot(identity);
        expect(resumed.received).toBe(4000);
        await resumed.append(encoding.subarray(4000));
        const stored = await resumed.complete();
        expect(stored.handle).toEqual(source.handle);
        const again = await storage.load();
        expect(again.snapshot?.handle).toEqual(source.handle);
        expect(again.incoming).toBeUndefined();
        expect(crc32c(await encodingOf(again.snapshot as StoredSnapshot))).toBe(source.checksum);
        return storage;
      }));

    it("a snapshot received for another identity starts afresh, and bytes that fail the checksum are refused", () =>
      withStorage(async (storage) => {
        const source = new BufferedSnapshot(snapshot(40, 3000).handle, snapshot(40, 3000).data);
        const encoding = await encodingOf(source);
        const stale = await storage.receiveSnapshot({ slot: 35, checksum: 1, size: 100 });
        await stale.append(new Uint8Array(50));
        const fresh = await storage.receiveSnapshot({ slot: 40, checksum: source.checksum, size: source.size });
        expect(fresh.received).toBe(0);
        const damaged = Uint8Array.from(encoding);
        damaged[damaged.length - 1] = (damaged[damaged.length - 1] as number) ^ 1;
        await fresh.append(damaged);
        await expect(fresh.complete()).rejects.toThrow(InvalidInputError);
        const state = await storage.load();
        expect(state.snapshot).toBeUndefined();
        expect(state.incoming).toBeUndefined();
      }));

    it("concurrent persists resolve in order and all land", () =>
      withStorage(async (first) => {
        const order: number[] = [];
        await Promise.all(
          Array.from({ length: 50 }, (_, slot) => first.persist(batch({ records: [record(slot, 1, `v${slot}`)] })).then(() => order.push(slot))),
        );
        expect(order).toEqual(Array.from({ length: 50 }, (_, slot) => slot));
        const storage = await harness.reopen(first);
        expect((await storage.load()).records).toHaveLength(50);
        return storage;
      }));

    // `reset` is optional: a storage without it skips these.
    it("reset forgets the promise, log, snapshots and a partial incoming snapshot, and marks the replica rebuilding, across a restart", (context) =>
      withStorage(async (first) => {
        if (first.reset === undefined) return context.skip("this storage has no reset");
        await first.persist(batch({ promised: ballot(4, "b"), records: [0, 1, 2, 3].map((slot) => record(slot, 4, `v${slot}`, true)) }));
        await first.writeSnapshot(snapshot(1).handle, [snapshot(1).data]);
        await first.persist(batch({ truncateBefore: 2, records: [record(4, 4, "v4")] }));
        const source = new BufferedSnapshot(snapshot(9, 3000).handle, snapshot(9, 3000).data);
        const receiving = await first.receiveSnapshot({ slot: 9, checksum: source.checksum, size: source.size });
        await receiving.append((await encodingOf(source)).subarray(0, 1000));
        await first.reset();
        expectRebuildingAndEmpty(await first.load());
        const storage = await harness.reopen(first);
        expectRebuildingAndEmpty(await storage.load());
        return storage;
      }));

    it("after a reset, writes work as on a new storage, and a batch with rebuilt clears the mark, across a restart", (context) =>
      withStorage(async (first) => {
        if (first.reset === undefined) return context.skip("this storage has no reset");
        await first.persist(batch({ promised: ballot(4, "b"), records: [record(0, 4, "old"), record(7, 4, "old")] }));
        await first.reset();
        await first.persist(batch({ promised: ballot(6, "c"), records: [record(0, 6, "x"), record(1, 6, "y"), record(2, 6, "z")] }));
        await first.persist(batch({ chosen: [0, 1] }));
        await first.writeSnapshot(snapshot(0).handle, [snapshot(0).data]);
        await first.persist(batch({ truncateBefore: 1 }));
        const rebuilding = await harness.reopen(first);
        const before = await rebuilding.load();
        expect(before.rebuilding).toBe(true);
        expect(before.promised).toEqual(ballot(6, "c"));
        expect(before.records).toEqual([record(1, 6, "y", true), record(2, 6, "z")]);
        expect(before.logStart).toBe(1);
        expect(before.snapshot?.handle).toEqual(snapshot(0).handle);
        await rebuilding.persist(batch({ rebuilt: true }));
        expect((await rebuilding.load()).rebuilding ?? false).toBe(false);
        const storage = await harness.reopen(rebuilding);
        const after = await storage.load();
        expect(after.rebuilding ?? false).toBe(false);
        expect(after.promised).toEqual(ballot(6, "c"));
        expect(after.records).toEqual([record(1, 6, "y", true), record(2, 6, "z")]);
        expect(after.snapshot?.handle).toEqual(snapshot(0).handle);
        return storage;
      }));

    it("a reset right after another, and a rebuilt mark that comes with records, are durable too", (context) =>
      withStorage(async (first) => {
        if (first.reset === undefined) return context.skip("this storage has no reset");
        await first.reset();
        await first.persist(batch({ records: [record(0, 1, "x")] }));
        await first.reset();
        expectRebuildingAndEmpty(await first.load());
        await first.persist(batch({ promised: ballot(2, "a"), records: [record(3, 2, "y")], rebuilt: true }));
        const storage = await harness.reopen(first);
        const state = await storage.load();
        expect(state.rebuilding ?? false).toBe(false);
        expect(state.promised).toEqual(ballot(2, "a"));
        expect(state.records).toEqual([record(3, 2, "y")]);
        return storage;
      }));
  });
}

/** What `load` gives right after a reset. */
function expectRebuildingAndEmpty(state: StoredState): void {
  expect(state.promised).toEqual(ZERO_BALLOT);
  expect(state.records).toEqual([]);
  expect(state.logStart).toBe(0);
  expect(state.snapshot).toBeUndefined();
  expect(state.incoming).toBeUndefined();
  expect(state.rebuilding).toBe(true);
}
