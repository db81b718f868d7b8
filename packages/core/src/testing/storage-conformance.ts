import { describe, expect, it } from "vitest";
import { type Ballot, ZERO_BALLOT } from "../ballot.js";
import type { Snapshot } from "../host.js";
import type { PersistBatch } from "../replica.js";
import type { Storage } from "../storage.js";
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
const snapshot = (slot: number): Snapshot => ({
  handle: { slot, time: slot, configs: [{ id: -1, voters: ["a", "b", "c"], learners: [] }], sessions: [{ session: "s", lastSeq: slot, lastOutcome: { ok: true, result: slot }, lastActive: slot }] },
  data: new Uint8Array([1, 2, 3, slot % 256]),
});

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

    it("installs snapshots atomically and returns the latest", () =>
      withStorage(async (first) => {
        await first.saveSnapshot(snapshot(10));
        await first.saveSnapshot(snapshot(20));
        const storage = await harness.reopen(first);
        const state = await storage.load();
        expect(state.snapshot?.handle).toEqual(snapshot(20).handle);
        expect([...(state.snapshot?.data ?? [])]).toEqual([...snapshot(20).data]);
        return storage;
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
  });
}
