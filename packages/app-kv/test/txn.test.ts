import { describe, expect, it } from "vitest";
import {
  type CompareOperator,
  type KvTest,
  compare,
  compareAndDelete,
  compareAndSet,
  increment,
  putIfAbsent,
  txn,
  txnOutcome,
} from "../src/index.js";
import { Harness, expectType, resultOf } from "./harness.js";

/** A store with `k` created at revision 2 and modified at 3 (version 2, value "v2", lease 5), and `other` at 4. */
function fixture(): Harness {
  const kv = new Harness();
  kv.op({ type: "lease-grant", id: 5, ttlMs: 60_000 });
  kv.op({ type: "put", key: "k", value: "v1" });
  kv.op({ type: "put", key: "k", value: "v2", lease: 5 });
  kv.op({ type: "put", key: "other", value: "o" });
  return kv;
}

/** Runs a one-guard transaction and reports which branch ran. */
function holds(kv: Harness, test: KvTest): boolean {
  return kv.txn(txn({ if: [test], then: [{ type: "get", key: "k" }], else: [{ type: "get", key: "other" }] })).succeeded;
}

describe("transaction guards (etcd Compare semantics)", () => {
  const cases: [string, KvTest, boolean][] = [];
  const numeric: [("version" | "createRevision" | "modRevision" | "lease"), number][] = [["version", 2], ["createRevision", 2], ["modRevision", 3], ["lease", 5]];
  for (const [target, actual] of numeric) {
    const expectations: [CompareOperator, number, boolean][] = [
      ["equal", actual, true],
      ["equal", actual + 1, false],
      ["not-equal", actual + 1, true],
      ["not-equal", actual, false],
      ["greater", actual - 1, true],
      ["greater", actual, false],
      ["less", actual + 1, true],
      ["less", actual, false],
    ];
    for (const [operator, value, expected] of expectations) cases.push([`${target} ${operator} ${value}`, compare[target]("k", operator, value), expected]);
  }
  cases.push(
    ["value equal", compare.value("k", "equal", "v2"), true],
    ["value equal (other)", compare.value("k", "equal", "v1"), false],
    ["value not-equal", compare.value("k", "not-equal", "v1"), true],
    ["value greater (byte order)", compare.value("k", "greater", "v10"), true],
    ["value less", compare.value("k", "less", "v3"), true],
    ["value less (false)", compare.value("k", "less", "v2"), false],
    ["exists", compare.exists("k"), true],
    ["exists (missing)", compare.exists("missing"), false],
    ["absent", compare.absent("missing"), true],
    ["absent (present)", compare.absent("k"), false],
    // A missing key has version, createRevision, modRevision and lease 0 ...
    ["missing: version equal 0", compare.version("missing", "equal", 0), true],
    ["missing: createRevision equal 0", compare.createRevision("missing", "equal", 0), true],
    ["missing: modRevision less 1", compare.modRevision("missing", "less", 1), true],
    ["missing: lease equal 0", compare.lease("missing", "equal", 0), true],
    // ... and no value: every value comparison fails, even not-equal (etcd).
    ["missing: value equal empty", compare.value("missing", "equal", ""), false],
    ["missing: value not-equal", compare.value("missing", "not-equal", "x"), false],
    // Range compares: every key of [key, end) must satisfy the comparison.
    ["range: all versions ≥ 1", { type: "compare", key: "a", end: "z", target: "version", operator: "greater", value: 0 }, true],
    ["range: one key fails", { type: "compare", key: "a", end: "z", target: "version", operator: "equal", value: 2 }, false],
    ["range: empty range compares as missing", { type: "compare", key: "x", end: "y", target: "createRevision", operator: "equal", value: 0 }, true],
  );

  it.each(cases)("%s", (_name, test, expected) => {
    const kv = fixture();
    expect(holds(kv, test)).toBe(expected);
  });

  it("every guard must hold for the top branch", () => {
    const kv = fixture();
    expect(kv.txn(txn({ if: [compare.exists("k"), compare.exists("other")], then: [] })).succeeded).toBe(true);
    expect(kv.txn(txn({ if: [compare.exists("k"), compare.exists("missing")], then: [] })).succeeded).toBe(false);
  });
});

describe("transactions are one revision, all or nothing", () => {
  it("every write of the top branch shares one revision, with one event each", () => {
    const kv = fixture();
    const result = kv.txn(
      txn({
        if: [compare.value("k", "equal", "v2")],
        then: [
          { type: "put", key: "a", value: "1" },
          { type: "put", key: "b", value: "2" },
          { type: "delete", key: "other" },
          { type: "incr", key: "n", delta: 3 },
        ],
        else: [{ type: "put", key: "lost", value: "x" }],
      }),
    );
    expect(result.succeeded).toBe(true);
    expect(result.results).toEqual([
      { type: "put", revision: 5 },
      { type: "put", revision: 5 },
      { type: "delete", revision: 5, deleted: 1 },
      { type: "incr", revision: 5, value: "3" },
    ]);
    expect(kv.machine.revision).toBe(5);
    expect(kv.machine.eventsSince(5).map((event) => [event.type, event.key, event.revision])).toEqual([
      ["put", "a", 5],
      ["put", "b", 5],
      ["delete", "other", 5],
      ["put", "n", 5],
    ]);
    expect(expectType(kv.op({ type: "get", key: "lost" }), "get").kv).toBeNull();
  });

  it("the else branch also writes in one revision", () => {
    const kv = fixture();
    const result = kv.txn(txn({ if: [compare.value("k", "equal", "nope")], then: [{ type: "put", key: "t", value: "1" }], else: [{ type: "put", key: "e1", value: "1" }, { type: "put", key: "e2", value: "2" }] }));
    expect(result).toEqual({ succeeded: false, results: [{ type: "put", revision: 5 }, { type: "put", revision: 5 }] });
    expect(expectType(kv.op({ type: "get", key: "t" }), "get").kv).toBeNull();
  });

  it("a transaction that writes nothing takes no revision; reads inside see the transaction's own writes", () => {
    const kv = fixture();
    expect(kv.txn(txn({ if: [compare.exists("k")], then: [{ type: "get", key: "k" }, { type: "delete", key: "missing" }] })).results).toMatchObject([
      { type: "get", revision: 4 },
      { type: "delete", revision: 4, deleted: 0 },
    ]);
    expect(kv.machine.revision).toBe(4);
    const result = kv.txn(txn({ then: [{ type: "put", key: "k", value: "v3" }, { type: "get", key: "k" }, { type: "get", key: "k", revision: 4 }] }));
    expect(result.results).toEqual([
      { type: "put", revision: 5 },
      { type: "get", revision: 5, kv: { key: "k", value: "v3", createRevision: 2, modRevision: 5, version: 3, lease: 0 } },
      { type: "get", revision: 4, kv: { key: "k", value: "v2", createRevision: 2, modRevision: 3, version: 2, lease: 5 } },
    ]);
  });

  it("a failing operation rolls back the branch's earlier writes and refuses the rest", () => {
    const kv = fixture();
    const digest = kv.machine.digest();
    const status = kv.machine.status();
    const result = kv.txn(
      txn({
        then: [
          { type: "put", key: "a", value: "1" },
          { type: "delete", key: "other" },
          { type: "put", key: "k", value: "moved", lease: 5 },
          { type: "put", key: "b", value: "2", lease: 99 },
          { type: "put", key: "c", value: "3" },
        ],
      }),
    );
    expect(result.results.slice(3)).toEqual([
      { type: "error", error: expect.objectContaining({ code: "LEASE_NOT_FOUND", lease: 99 }) },
      { type: "error", error: expect.objectContaining({ code: "TXN_ABORTED", cause: "LEASE_NOT_FOUND" }) },
    ]);
    expect(txnOutcome(result)).toMatchObject({ ok: false, error: { code: "LEASE_NOT_FOUND" } });
    expect(kv.machine.digest()).toBe(digest);
    expect(kv.machine.status()).toEqual(status);
    expect(kv.machine.eventsSince(5)).toEqual([]);
    expect(expectType(kv.op({ type: "get", key: "other" }), "get").kv?.value).toBe("o");
    expect(kv.query({ type: "lease", id: 5 })).toMatchObject({ keys: ["k"] });
    // The next command takes the revision the failed one did not keep.
    expect(kv.op({ type: "put", key: "z", value: "z" })).toEqual({ type: "put", revision: 5 });
  });

  it("a rolled-back lease grant, keepalive or revoke leaves the leases as they were", () => {
    const kv = fixture();
    const leases = kv.query({ type: "leases" });
    const digest = kv.machine.digest();
    kv.advance(1000);
    kv.txn(txn({ then: [{ type: "lease-grant", id: 8, ttlMs: 5 } as never, { type: "lease-keepalive", id: 5 } as never, { type: "lease-revoke", id: 5 } as never, { type: "incr", key: "other", delta: 1 }] }));
    expect(kv.query({ type: "leases" })).toEqual(leases);
    expect(kv.machine.digest()).toBe(digest);
    expect(expectType(kv.op({ type: "get", key: "k" }), "get").kv?.lease).toBe(5);
  });

  it("an invalid guard aborts the command instead of silently choosing the else branch's writes", () => {
    const kv = fixture();
    const result = kv.txn({ type: "multi", guard: [{ type: "compare", key: "k" } as never], top: [], fop: [{ type: "put", key: "x", value: "1" }] });
    expect(result.succeeded).toBe(false);
    expect(txnOutcome(result)).toMatchObject({ ok: false, error: { code: "TXN_ABORTED", cause: "INVALID_REQUEST" } });
    expect(kv.machine.revision).toBe(4);
  });

  it("two transactions in one slot get two revisions", () => {
    const kv = fixture();
    const outcomes = kv.batch([txn({ then: [{ type: "put", key: "a", value: "1" }] }), txn({ then: [{ type: "put", key: "b", value: "2" }, { type: "put", key: "c", value: "3" }] })]);
    expect(outcomes.map((outcome) => (resultOf(outcome) as { results: unknown[] }).results)).toEqual([[{ type: "put", revision: 5 }], [{ type: "put", revision: 6 }, { type: "put", revision: 6 }]]);
  });
});

describe("MultiOp helpers", () => {
  it("putIfAbsent creates once, then returns the existing key", () => {
    const kv = new Harness();
    expect(txnOutcome(kv.txn(putIfAbsent("lock", "owner-1")))).toEqual({ ok: true, succeeded: true, results: [{ type: "put", revision: 2 }] });
    const second = txnOutcome(kv.txn(putIfAbsent("lock", "owner-2")));
    expect(second).toMatchObject({ ok: true, succeeded: false, results: [{ type: "get", kv: { value: "owner-1" } }] });
  });

  it("compareAndSet by value, modRevision and version; a miss returns the current key", () => {
    const kv = new Harness();
    kv.op({ type: "put", key: "k", value: "a" }); // 2
    expect(kv.txn(compareAndSet("k", "a", "b"))).toMatchObject({ succeeded: true, results: [{ type: "put", revision: 3, prevKv: { value: "a" } }] });
    expect(kv.txn(compareAndSet("k", "a", "c"))).toMatchObject({ succeeded: false, results: [{ type: "get", kv: { value: "b", modRevision: 3 } }] });
    expect(kv.txn(compareAndSet("k", { modRevision: 3 }, "d")).succeeded).toBe(true);
    expect(kv.txn(compareAndSet("k", { modRevision: 3 }, "e")).succeeded).toBe(false);
    expect(kv.txn(compareAndSet("k", { version: 3 }, "f")).succeeded).toBe(true);
    expect(kv.txn(compareAndSet("new", { version: 0 }, "created")).succeeded).toBe(true);
    expect(expectType(kv.op({ type: "get", key: "k" }), "get").kv).toMatchObject({ value: "f", version: 4 });
  });

  it("compareAndDelete deletes only the expected value", () => {
    const kv = new Harness();
    kv.op({ type: "put", key: "k", value: "a" });
    expect(kv.txn(compareAndDelete("k", "b")).succeeded).toBe(false);
    expect(kv.txn(compareAndDelete("k", "a"))).toMatchObject({ succeeded: true, results: [{ type: "delete", deleted: 1, prevKvs: [{ value: "a" }] }] });
    expect(expectType(kv.op({ type: "get", key: "k" }), "get").kv).toBeNull();
  });

  it("increment builds an exactly-once incr command", () => {
    const kv = new Harness();
    expect(resultOf(kv.batch([increment("hits"), increment("hits", "41")])[1])).toEqual({ type: "incr", revision: 3, value: "42" });
  });
});
