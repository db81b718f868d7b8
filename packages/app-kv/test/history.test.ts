import { describe, expect, it } from "vitest";
import { CompactedError, KvMachine, keyRange, prefixRange } from "../src/index.js";
import { Harness, expectType } from "./harness.js";

describe("the event log (watch history)", () => {
  it("records puts and deletes in revision order, with previous values, filtered by key range", () => {
    const kv = new Harness();
    kv.op({ type: "put", key: "a/1", value: "x" }); // 2
    kv.op({ type: "put", key: "b", value: "y" }); // 3
    kv.op({ type: "put", key: "a/1", value: "x2" }); // 4
    kv.op({ type: "delete", key: "a/1" }); // 5
    expect(kv.machine.eventsSince(1, prefixRange("a/"))).toEqual([
      { type: "put", revision: 2, key: "a/1", value: "x", createRevision: 2, version: 1, lease: 0 },
      { type: "put", revision: 4, key: "a/1", value: "x2", createRevision: 2, version: 2, lease: 0, prevValue: "x" },
      { type: "delete", revision: 5, key: "a/1", prevValue: "x2" },
    ]);
    expect(kv.machine.eventsSince(3, keyRange("b")).map((event) => event.revision)).toEqual([3]);
    expect(kv.machine.eventsSince(4).map((event) => event.revision)).toEqual([4, 5]);
    expect(kv.machine.eventsSince(6)).toEqual([]);
    expect(kv.machine.eventsSince(1, { start: "" }, 2).map((event) => event.revision)).toEqual([2, 3]);
    expect(kv.query({ type: "events", fromRevision: 3, start: "b", end: "c" })).toEqual({
      type: "events",
      revision: 5,
      events: [{ type: "put", revision: 3, key: "b", value: "y", createRevision: 3, version: 1, lease: 0 }],
    });
  });

  it("compaction drops history: old reads and watches fail with COMPACTED / CompactedError { compactRevision }", () => {
    const kv = new Harness();
    for (let index = 0; index < 5; index += 1) kv.op({ type: "put", key: "k", value: `v${index}` }); // revisions 2..6
    kv.op({ type: "put", key: "gone", value: "soon" }); // 7
    kv.op({ type: "delete", key: "gone" }); // 8
    expect(kv.op({ type: "compact", revision: 4 })).toEqual({ type: "compact", compactRevision: 4 });
    expect(kv.op({ type: "get", key: "k", revision: 3 })).toMatchObject({ type: "error", error: { code: "COMPACTED", compactRevision: 4 } });
    expect(expectType(kv.op({ type: "get", key: "k", revision: 4 }), "get").kv).toMatchObject({ value: "v2", version: 3 });
    expect(expectType(kv.op({ type: "get", key: "k", revision: 5 }), "get").kv).toMatchObject({ value: "v3", version: 4 });
    expect(expectType(kv.op({ type: "get", key: "gone", revision: 7 }), "get").kv?.value).toBe("soon");
    expect(() => kv.machine.eventsSince(3)).toThrow(CompactedError);
    let caught: unknown;
    try {
      kv.machine.eventsSince(1);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(CompactedError);
    expect(caught).toMatchObject({ compactRevision: 4, code: "COMPACTED" });
    expect(kv.machine.eventsSince(4).map((event) => event.revision)).toEqual([4, 5, 6, 7, 8]);
    expect(kv.query({ type: "events", fromRevision: 2 })).toMatchObject({ type: "error", error: { code: "COMPACTED", compactRevision: 4 } });
    expect(kv.machine.status()).toMatchObject({ compactRevision: 4, historyStartRevision: 4 });

    // Compacting past the tombstone forgets the deleted key entirely; reads at or after the point still work.
    kv.op({ type: "compact", revision: 8 });
    kv.op({ type: "get", key: "k" }); // the next command reclaims the memory
    expect(expectType(kv.op({ type: "get", key: "gone", revision: 8 }), "get").kv).toBeNull();
    expect(expectType(kv.op({ type: "get", key: "k", revision: 8 }), "get").kv).toMatchObject({ value: "v4", createRevision: 2, version: 5 });
    expect(kv.op({ type: "range", start: "", revision: 7 })).toMatchObject({ type: "error", error: { code: "COMPACTED", compactRevision: 8 } });
  });

  it("compaction refuses revisions already compacted or not yet reached", () => {
    const kv = new Harness();
    kv.op({ type: "put", key: "k", value: "v" }); // 2
    kv.op({ type: "compact", revision: 2 });
    expect(kv.op({ type: "compact", revision: 2 })).toMatchObject({ type: "error", error: { code: "COMPACTED", compactRevision: 2 } });
    expect(kv.op({ type: "compact", revision: 3 })).toMatchObject({ type: "error", error: { code: "FUTURE_REVISION", revision: 3, currentRevision: 2 } });
  });

  it("retention by count drops the oldest whole revisions, and watches from before them fail", () => {
    const kv = new Harness({ eventRetention: { maxEvents: 4 } });
    for (let index = 0; index < 6; index += 1) kv.op({ type: "put", key: `k${index}`, value: "v" }); // 2..7
    kv.op({ type: "delete-range", start: "k0", end: "k3" }); // 8: three events
    kv.op({ type: "get", key: "k0" }); // trimming happens at the start of a command
    // 4 events allowed: revision 8 (3 events) + revision 7 (1 event).
    expect(kv.machine.historyStartRevision).toBe(7);
    expect(kv.machine.eventsSince(7).map((event) => event.revision)).toEqual([7, 8, 8, 8]);
    expect(() => kv.machine.eventsSince(6)).toThrow(CompactedError);
    // MVCC reads are not affected by the event log's retention.
    expect(expectType(kv.op({ type: "get", key: "k0", revision: 2 }), "get").kv?.value).toBe("v");
  });

  it("retention by revisions keeps the events of the last N revisions", () => {
    const kv = new Harness({ eventRetention: { maxEvents: 1_000, maxRevisions: 3 } });
    for (let index = 0; index < 10; index += 1) kv.op({ type: "put", key: "k", value: `${index}` }); // 2..11
    kv.op({ type: "get", key: "k" });
    expect(kv.machine.historyStartRevision).toBe(9);
    expect(kv.machine.eventsSince(9).map((event) => event.revision)).toEqual([9, 10, 11]);
  });

  it("the newest revision is kept whole even when it alone is over the count", () => {
    const kv = new Harness({ eventRetention: { maxEvents: 1 } });
    expect(new KvMachine().historyStartRevision).toBe(1);
    kv.txn({ type: "multi", guard: [], top: [{ type: "put", key: "a", value: "1" }, { type: "put", key: "b", value: "2" }], fop: [] });
    kv.op({ type: "get", key: "a" });
    expect(kv.machine.eventsSince(2)).toHaveLength(2);
    kv.op({ type: "put", key: "c", value: "3" });
    kv.op({ type: "get", key: "a" });
    expect(kv.machine.historyStartRevision).toBe(3);
    expect(kv.machine.eventsSince(3)).toHaveLength(1);
  });
});
