import { describe, expect, it } from "vitest";
import { Harness, expectType } from "./harness.js";

/*
 * etcd's data model (https://etcd.io/docs/v3.5/learning/data_model/ and the
 * KeyValue fields of api.md): a new store is at revision 1 and every change
 * takes the next revision; create_revision is the revision of the key's last
 * creation, mod_revision of its last modification, and version counts the
 * modifications since creation ("a deletion resets the version to zero and
 * any modification of the key increases its version").
 */
describe("revisions and versions follow etcd", () => {
  it("a new store is at revision 1 and its first put is revision 2", () => {
    const kv = new Harness();
    expect(kv.machine.revision).toBe(1);
    expect(kv.op({ type: "put", key: "foo", value: "bar" })).toEqual({ type: "put", revision: 2 });
    expect(expectType(kv.op({ type: "get", key: "foo" }), "get")).toEqual({
      type: "get",
      revision: 2,
      kv: { key: "foo", value: "bar", createRevision: 2, modRevision: 2, version: 1, lease: 0 },
    });
  });

  it("modifications keep createRevision, move modRevision and count versions; even an identical value is a modification", () => {
    const kv = new Harness();
    kv.op({ type: "put", key: "foo", value: "bar" });
    kv.op({ type: "put", key: "other", value: "x" });
    kv.op({ type: "put", key: "foo", value: "baz" });
    expect(kv.op({ type: "put", key: "foo", value: "baz" })).toEqual({ type: "put", revision: 5 });
    expect(expectType(kv.op({ type: "get", key: "foo" }), "get").kv).toEqual({ key: "foo", value: "baz", createRevision: 2, modRevision: 5, version: 3, lease: 0 });
  });

  it("a delete takes a revision and resets the version; re-creating starts a new life", () => {
    const kv = new Harness();
    kv.op({ type: "put", key: "foo", value: "1" });
    kv.op({ type: "put", key: "foo", value: "2" });
    expect(kv.op({ type: "delete", key: "foo", prevKv: true })).toEqual({
      type: "delete",
      revision: 4,
      deleted: 1,
      prevKvs: [{ key: "foo", value: "2", createRevision: 2, modRevision: 3, version: 2, lease: 0 }],
    });
    expect(expectType(kv.op({ type: "get", key: "foo" }), "get").kv).toBeNull();
    kv.op({ type: "put", key: "foo", value: "3" });
    expect(expectType(kv.op({ type: "get", key: "foo" }), "get").kv).toEqual({ key: "foo", value: "3", createRevision: 5, modRevision: 5, version: 1, lease: 0 });
  });

  it("deleting nothing changes nothing: no revision is taken", () => {
    const kv = new Harness();
    kv.op({ type: "put", key: "a", value: "1" });
    expect(kv.op({ type: "delete", key: "missing" })).toEqual({ type: "delete", revision: 2, deleted: 0 });
    expect(kv.op({ type: "delete-range", start: "x", end: "z", prevKv: true })).toEqual({ type: "delete", revision: 2, deleted: 0, prevKvs: [] });
    expect(kv.machine.revision).toBe(2);
    expect(kv.machine.eventsSince(1).map((event) => event.revision)).toEqual([2]);
  });

  it("a put returns the previous key only when asked, and none for a new key", () => {
    const kv = new Harness();
    expect(kv.op({ type: "put", key: "k", value: "v1", prevKv: true })).toEqual({ type: "put", revision: 2 });
    expect(kv.op({ type: "put", key: "k", value: "v2", prevKv: true })).toEqual({
      type: "put",
      revision: 3,
      prevKv: { key: "k", value: "v1", createRevision: 2, modRevision: 2, version: 1, lease: 0 },
    });
    expect(kv.op({ type: "put", key: "k", value: "v3" })).toEqual({ type: "put", revision: 4 });
  });

  it("a delete-range removes every key of [start, end) in one revision", () => {
    const kv = new Harness();
    for (const key of ["a", "b", "c", "d"]) kv.op({ type: "put", key, value: key });
    const deleted = expectType(kv.op({ type: "delete-range", start: "b", end: "d", prevKv: true }), "delete");
    expect(deleted.revision).toBe(6);
    expect(deleted.deleted).toBe(2);
    expect(deleted.prevKvs?.map((kv) => kv.key)).toEqual(["b", "c"]);
    expect(kv.machine.eventsSince(6)).toEqual([
      { type: "delete", revision: 6, key: "b", prevValue: "b" },
      { type: "delete", revision: 6, key: "c", prevValue: "c" },
    ]);
    expect(expectType(kv.op({ type: "range", start: "" }), "range").kvs.map((kv) => kv.key)).toEqual(["a", "d"]);
  });

  it("reads at an older revision see the store as it was (MVCC)", () => {
    const kv = new Harness();
    kv.op({ type: "put", key: "k", value: "one" }); // 2
    kv.op({ type: "put", key: "k", value: "two" }); // 3
    kv.op({ type: "delete", key: "k" }); // 4
    kv.op({ type: "put", key: "k", value: "three" }); // 5
    const at = (revision: number) => expectType(kv.op({ type: "get", key: "k", revision }), "get").kv;
    expect(at(1)).toBeNull();
    expect(at(2)).toMatchObject({ value: "one", version: 1, createRevision: 2, modRevision: 2 });
    expect(at(3)).toMatchObject({ value: "two", version: 2, createRevision: 2, modRevision: 3 });
    expect(at(4)).toBeNull();
    expect(at(5)).toMatchObject({ value: "three", version: 1, createRevision: 5, modRevision: 5 });
    expect(expectType(kv.op({ type: "get", key: "k", revision: 3 }), "get").revision).toBe(3);
  });

  it("a read at a revision that has not happened yet is FUTURE_REVISION", () => {
    const kv = new Harness();
    kv.op({ type: "put", key: "k", value: "v" });
    expect(kv.op({ type: "get", key: "k", revision: 3 })).toMatchObject({ type: "error", error: { code: "FUTURE_REVISION", revision: 3, currentRevision: 2 } });
    expect(kv.query({ type: "range", start: "", revision: 9 })).toMatchObject({ type: "error", error: { code: "FUTURE_REVISION" } });
  });

  it("incr adds to a decimal value with arbitrary precision, treats absent as 0, keeps the lease, refuses non-numbers", () => {
    const kv = new Harness();
    expect(kv.op({ type: "incr", key: "n", delta: 5 })).toEqual({ type: "incr", revision: 2, value: "5" });
    expect(kv.op({ type: "incr", key: "n", delta: "-7" })).toEqual({ type: "incr", revision: 3, value: "-2" });
    kv.op({ type: "put", key: "big", value: "9007199254740993" });
    expect(kv.op({ type: "incr", key: "big", delta: "+9007199254740993" })).toMatchObject({ value: "18014398509481986" });
    kv.op({ type: "lease-grant", id: 7, ttlMs: 10_000 });
    kv.op({ type: "put", key: "leased", value: "1", lease: 7 });
    kv.op({ type: "incr", key: "leased", delta: 1 });
    expect(expectType(kv.op({ type: "get", key: "leased" }), "get").kv).toMatchObject({ value: "2", version: 2, lease: 7 });
    kv.op({ type: "put", key: "word", value: "ten" });
    const revision = kv.machine.revision;
    expect(kv.op({ type: "incr", key: "word", delta: 1 })).toMatchObject({ type: "error", error: { code: "NOT_A_NUMBER", key: "word" } });
    expect(kv.machine.revision).toBe(revision);
  });

  it("a retried command (same session and sequence number) is answered from core's session table, not applied again", () => {
    const kv = new Harness();
    kv.op({ type: "put", key: "n", value: "10" });
    const command = { session: kv.session, seq: 99, body: { type: "op", op: { type: "incr", key: "n", delta: 1 } } } as const;
    const first = kv.commands([command]).at(0);
    const retry = kv.commands([command]).at(0);
    expect(first?.outcome).toEqual({ ok: true, result: { type: "incr", revision: 3, value: "11" } });
    expect(retry?.duplicate).toBe(true);
    expect(retry?.outcome).toEqual(first?.outcome);
    expect(expectType(kv.machine.query({ type: "get", key: "n" }), "get").kv?.value).toBe("11");
  });

  it("malformed operations are INVALID_REQUEST results, never throws", () => {
    const kv = new Harness();
    for (const bad of [null, 42, "put", {}, { type: "put", key: "", value: "v" }, { type: "put", key: "k" }, { type: "nope" }, { type: "range", start: 1 }, { type: "incr", key: "k", delta: 1.5 }, { type: "lease-grant", id: 0, ttlMs: 5 }]) {
      expect(kv.raw(bad)).toMatchObject({ type: "error", error: { code: "INVALID_REQUEST" } });
    }
    expect(kv.machine.revision).toBe(1);
    expect(kv.machine.query({ type: "bogus" } as never)).toMatchObject({ type: "error", error: { code: "INVALID_REQUEST" } });
  });
});
