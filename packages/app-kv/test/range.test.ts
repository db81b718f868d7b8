import { describe, expect, it } from "vitest";
import { type KeyValue, keyRange, prefixEnd, prefixRange } from "../src/index.js";
import { Harness, expectType } from "./harness.js";

function seeded(keys: readonly string[]): Harness {
  const kv = new Harness();
  for (const key of keys) kv.op({ type: "put", key, value: `v:${key}` });
  return kv;
}

const keysOf = (kvs: readonly KeyValue[]) => kvs.map((kv) => kv.key);

describe("range reads", () => {
  const keys = ["b", "a", "app/2", "app/1", "apple", "apq", "c", "ap"];

  it("returns [start, end) in key order, whatever the insertion order", () => {
    const kv = seeded(keys);
    expect(keysOf(expectType(kv.op({ type: "range", start: "ap", end: "b" }), "range").kvs)).toEqual(["ap", "app/1", "app/2", "apple", "apq"]);
    expect(keysOf(expectType(kv.op({ type: "range", start: "" }), "range").kvs)).toEqual(["a", "ap", "app/1", "app/2", "apple", "apq", "b", "c"]);
    expect(keysOf(expectType(kv.op({ type: "range", start: "b" }), "range").kvs)).toEqual(["b", "c"]);
    expect(keysOf(expectType(kv.op({ type: "range", start: "ap", end: "ap" }), "range").kvs)).toEqual([]);
  });

  it("prefix ranges hold exactly the keys with the prefix", () => {
    const kv = seeded(keys);
    expect(keysOf(expectType(kv.op({ type: "range", ...prefixRange("app/") }), "range").kvs)).toEqual(["app/1", "app/2"]);
    expect(keysOf(expectType(kv.op({ type: "range", ...prefixRange("app") }), "range").kvs)).toEqual(["app/1", "app/2", "apple"]);
    expect(keysOf(expectType(kv.op({ type: "range", ...keyRange("ap") }), "range").kvs)).toEqual(["ap"]);
    expect(prefixRange("")).toEqual({ start: "" });
    expect(prefixEnd("a\uffff\uffff")).toBe("b");
    expect(prefixEnd("\uffff")).toBeUndefined();
  });

  it("limit caps the keys returned while count counts them all; more and next say where to continue", () => {
    const kv = seeded(keys);
    const page = expectType(kv.op({ type: "range", start: "a", limit: 3 }), "range");
    expect(keysOf(page.kvs)).toEqual(["a", "ap", "app/1"]);
    expect(page).toMatchObject({ count: 8, more: true, next: "app/1\u0000", revision: 9 });
    const exact = expectType(kv.op({ type: "range", start: "a", limit: 8 }), "range");
    expect(exact.more).toBe(false);
    expect(exact.next).toBeUndefined();
  });

  it("pagination pinned to a revision sees one consistent state while writes go on", () => {
    const kv = seeded(["k1", "k2", "k3", "k4", "k5"]);
    const pages: string[][] = [];
    let request = { type: "range" as const, start: "k", end: "l", limit: 2 };
    let first = expectType(kv.op(request), "range");
    const pinned = first.revision;
    pages.push(keysOf(first.kvs));
    for (;;) {
      // Concurrent writes: a new key inside the range, a deleted one, a changed one.
      kv.op({ type: "put", key: `k${pages.length}b`, value: "new" });
      kv.op({ type: "delete", key: "k5" });
      kv.op({ type: "put", key: "k3", value: "changed" });
      if (!first.more || first.next === undefined) break;
      first = expectType(kv.op({ ...request, start: first.next, revision: pinned }), "range");
      expect(first.revision).toBe(pinned);
      expect(first.count).toBeLessThanOrEqual(5);
      pages.push(keysOf(first.kvs));
      for (const item of first.kvs) expect(item.value).toBe(`v:${item.key}`);
    }
    expect(pages.flat()).toEqual(["k1", "k2", "k3", "k4", "k5"]);
    request = { ...request, limit: 0 };
    expect(keysOf(expectType(kv.op(request), "range").kvs)).not.toEqual(["k1", "k2", "k3", "k4", "k5"]);
  });

  it("keysOnly returns metadata with empty values; countOnly returns only the count", () => {
    const kv = seeded(keys);
    kv.op({ type: "put", key: "a", value: "again" });
    const keysOnly = expectType(kv.op({ type: "range", start: "a", end: "ap", keysOnly: true }), "range");
    expect(keysOnly.kvs).toEqual([{ key: "a", value: "", createRevision: 3, modRevision: 10, version: 2, lease: 0 }]);
    const countOnly = expectType(kv.op({ type: "range", ...prefixRange("ap"), countOnly: true, limit: 1 }), "range");
    expect(countOnly).toEqual({ type: "range", revision: 10, kvs: [], count: 5, more: false });
  });

  it("ranges at an older revision include keys deleted since and exclude keys created since", () => {
    const kv = seeded(["a", "b", "c"]); // revisions 2..4
    kv.op({ type: "delete", key: "b" }); // 5
    kv.op({ type: "put", key: "d", value: "v:d" }); // 6
    kv.op({ type: "put", key: "a", value: "a2" }); // 7
    const old = expectType(kv.op({ type: "range", start: "", revision: 4 }), "range");
    expect(old.kvs.map((item) => [item.key, item.value])).toEqual([["a", "v:a"], ["b", "v:b"], ["c", "v:c"]]);
    const now = expectType(kv.op({ type: "range", start: "" }), "range");
    expect(now.kvs.map((item) => [item.key, item.value])).toEqual([["a", "a2"], ["c", "v:c"], ["d", "v:d"]]);
    expect(expectType(kv.op({ type: "range", start: "", revision: 5, countOnly: true }), "range").count).toBe(2);
  });

  it("queries answer the same reads from the applied state without going through the log", () => {
    const kv = seeded(keys);
    const revision = kv.machine.revision;
    expect(kv.query({ type: "range", start: "a", limit: 2 })).toEqual(kv.op({ type: "range", start: "a", limit: 2 }));
    expect(kv.query({ type: "get", key: "c" })).toEqual(kv.op({ type: "get", key: "c" }));
    expect(kv.machine.revision).toBe(revision);
  });

  it("scales past one chunk of the ordered map", () => {
    const kv = new Harness();
    const all: string[] = [];
    for (let index = 0; index < 3000; index += 1) {
      const key = `key/${String((index * 7919) % 3000).padStart(5, "0")}`;
      all.push(key);
      kv.op({ type: "put", key, value: "x" });
    }
    all.sort();
    const result = expectType(kv.op({ type: "range", start: "key/01000", end: "key/01010" }), "range");
    expect(keysOf(result.kvs)).toEqual(all.filter((key) => key >= "key/01000" && key < "key/01010"));
    expect(expectType(kv.op({ type: "range", start: "", countOnly: true }), "range").count).toBe(3000);
    expect(expectType(kv.op({ type: "delete-range", start: "key/00500", end: "key/02500" }), "delete").deleted).toBe(2000);
    expect(keysOf(expectType(kv.op({ type: "range", start: "key/00498", limit: 4 }), "range").kvs)).toEqual(["key/00498", "key/00499", "key/02500", "key/02501"]);
  });
});
