import { describe, expect, it } from "vitest";
import { compare, txn } from "../src/index.js";
import { Harness, expectType } from "./harness.js";

describe("leases expire by log time", () => {
  it("grant, attach keys, and expire them all in one revision at the first command at or after the deadline", () => {
    const kv = new Harness();
    expect(kv.op({ type: "lease-grant", id: 1, ttlMs: 500 })).toEqual({ type: "lease-grant", id: 1, ttlMs: 500, expiresAt: 1_500 });
    expect(kv.machine.revision).toBe(1); // a grant changes no key
    kv.op({ type: "put", key: "session/a", value: "1", lease: 1 });
    kv.op({ type: "put", key: "session/b", value: "2", lease: 1 });
    kv.op({ type: "put", key: "keep", value: "3" });
    expect(kv.query({ type: "lease", id: 1 })).toEqual({ type: "lease", id: 1, ttlMs: 500, expiresAt: 1_500, keys: ["session/a", "session/b"] });

    kv.advance(499); // log time 1499: not yet
    kv.op({ type: "get", key: "keep" });
    expect(kv.machine.revision).toBe(4);
    expect(kv.query({ type: "leases" })).toMatchObject({ leases: [{ id: 1 }] });

    kv.advance(1); // log time 1500: due. Nothing happens until a command is applied ...
    expect(expectType(kv.query({ type: "get", key: "session/a" }), "get").kv).not.toBeNull();
    // ... and then the expiry comes first, in its own revision, before the command's own write.
    expect(kv.op({ type: "put", key: "after", value: "x" })).toEqual({ type: "put", revision: 6 });
    expect(kv.machine.eventsSince(5)).toEqual([
      { type: "delete", revision: 5, key: "session/a", prevValue: "1" },
      { type: "delete", revision: 5, key: "session/b", prevValue: "2" },
      { type: "put", revision: 6, key: "after", value: "x", createRevision: 6, version: 1, lease: 0 },
    ]);
    expect(kv.query({ type: "leases" })).toEqual({ type: "leases", leases: [] });
    expect(kv.query({ type: "lease", id: 1 })).toMatchObject({ type: "error", error: { code: "LEASE_NOT_FOUND" } });
    expect(expectType(kv.op({ type: "range", start: "" }), "range").kvs.map((item) => item.key)).toEqual(["after", "keep"]);
  });

  it("expiry happens before the guards of a transaction are tested", () => {
    const kv = new Harness();
    kv.op({ type: "lease-grant", id: 1, ttlMs: 100 });
    kv.op({ type: "put", key: "lock", value: "me", lease: 1 });
    kv.advance(100);
    const result = kv.txn(txn({ if: [compare.absent("lock")], then: [{ type: "put", key: "lock", value: "you" }] }));
    expect(result).toEqual({ succeeded: true, results: [{ type: "put", revision: 4 }] });
  });

  it("the expire-leases op does nothing but give log time a command to act at", () => {
    const kv = new Harness();
    kv.op({ type: "lease-grant", id: 3, ttlMs: 10 });
    kv.op({ type: "put", key: "k", value: "v", lease: 3 });
    kv.advance(10);
    expect(kv.op({ type: "expire-leases" })).toEqual({ type: "expire-leases", revision: 3 });
    expect(expectType(kv.query({ type: "get", key: "k" }), "get").kv).toBeNull();
  });

  it("keepalive pushes the deadline to ttl after the keepalive's log time", () => {
    const kv = new Harness();
    kv.op({ type: "lease-grant", id: 1, ttlMs: 100 });
    kv.op({ type: "put", key: "k", value: "v", lease: 1 });
    kv.advance(90);
    expect(kv.op({ type: "lease-keepalive", id: 1 })).toEqual({ type: "lease-keepalive", id: 1, ttlMs: 100, expiresAt: 1_190 });
    kv.advance(60); // 1150: past the first deadline, before the new one
    kv.op({ type: "expire-leases" });
    expect(expectType(kv.query({ type: "get", key: "k" }), "get").kv).not.toBeNull();
    kv.advance(40); // 1190
    kv.op({ type: "expire-leases" });
    expect(expectType(kv.query({ type: "get", key: "k" }), "get").kv).toBeNull();
  });

  it("several leases due at once expire in (deadline, id) order, one revision each; a lease without keys takes none", () => {
    const kv = new Harness();
    kv.op({ type: "lease-grant", id: 9, ttlMs: 50 });
    kv.op({ type: "lease-grant", id: 2, ttlMs: 50 });
    kv.op({ type: "lease-grant", id: 4, ttlMs: 20 });
    kv.op({ type: "lease-grant", id: 6, ttlMs: 20 });
    kv.op({ type: "put", key: "nine", value: "9", lease: 9 }); // 2
    kv.op({ type: "put", key: "two", value: "2", lease: 2 }); // 3
    kv.op({ type: "put", key: "four", value: "4", lease: 4 }); // 4
    kv.advance(100);
    kv.op({ type: "expire-leases" });
    expect(kv.machine.eventsSince(5).map((event) => [event.revision, event.key])).toEqual([
      [5, "four"],
      [6, "two"],
      [7, "nine"],
    ]);
    expect(kv.machine.status().leaseCount).toBe(0);
  });

  it("revoke deletes the lease's keys in one revision; a put without the lease detaches the key", () => {
    const kv = new Harness();
    kv.op({ type: "lease-grant", id: 1, ttlMs: 10_000 });
    kv.op({ type: "put", key: "a", value: "1", lease: 1 });
    kv.op({ type: "put", key: "b", value: "2", lease: 1 });
    kv.op({ type: "put", key: "c", value: "3", lease: 1 });
    kv.op({ type: "put", key: "b", value: "2b" }); // detached (etcd: a put without lease clears it)
    expect(kv.query({ type: "lease", id: 1 })).toMatchObject({ keys: ["a", "c"] });
    expect(kv.op({ type: "lease-revoke", id: 1 })).toEqual({ type: "lease-revoke", id: 1, revision: 6, deleted: 2 });
    expect(expectType(kv.op({ type: "range", start: "" }), "range").kvs.map((item) => item.key)).toEqual(["b"]);
    expect(kv.op({ type: "lease-revoke", id: 1 })).toMatchObject({ type: "error", error: { code: "LEASE_NOT_FOUND" } });
    expect(kv.op({ type: "lease-keepalive", id: 1 })).toMatchObject({ type: "error", error: { code: "LEASE_NOT_FOUND" } });
  });

  it("a deleted key leaves its lease; re-creating it without the lease does not bring it back", () => {
    const kv = new Harness();
    kv.op({ type: "lease-grant", id: 1, ttlMs: 100 });
    kv.op({ type: "put", key: "a", value: "1", lease: 1 });
    kv.op({ type: "delete", key: "a" });
    kv.op({ type: "put", key: "a", value: "2" });
    kv.advance(100);
    kv.op({ type: "expire-leases" });
    expect(expectType(kv.query({ type: "get", key: "a" }), "get").kv?.value).toBe("2");
  });

  it("puts on missing leases and duplicate grants are refused", () => {
    const kv = new Harness();
    expect(kv.op({ type: "put", key: "a", value: "1", lease: 42 })).toMatchObject({ type: "error", error: { code: "LEASE_NOT_FOUND", lease: 42 } });
    kv.op({ type: "lease-grant", id: 42, ttlMs: 100 });
    expect(kv.op({ type: "lease-grant", id: 42, ttlMs: 100 })).toMatchObject({ type: "error", error: { code: "LEASE_EXISTS", lease: 42 } });
    expect(kv.machine.revision).toBe(1);
  });

  it("many keepalives leave stale heap entries that neither expire a lease early nor pile up", () => {
    const kv = new Harness();
    kv.op({ type: "lease-grant", id: 1, ttlMs: 1_000 });
    kv.op({ type: "put", key: "k", value: "v", lease: 1 });
    for (let round = 0; round < 500; round += 1) {
      kv.advance(10);
      kv.op({ type: "lease-keepalive", id: 1 });
    }
    kv.advance(999);
    kv.op({ type: "expire-leases" });
    expect(expectType(kv.query({ type: "get", key: "k" }), "get").kv).not.toBeNull();
    kv.advance(1);
    kv.op({ type: "expire-leases" });
    expect(expectType(kv.query({ type: "get", key: "k" }), "get").kv).toBeNull();
  });
});

describe("storage quota", () => {
  it("refuses a put that would exceed the quota, raises the alarm, stays read/delete-only until a delete frees space", () => {
    const kv = new Harness({ quotaBytes: 20 });
    expect(kv.op({ type: "put", key: "aaaa", value: "123456" })).toEqual({ type: "put", revision: 2 }); // 10 bytes
    expect(kv.op({ type: "put", key: "bbbb", value: "1234567" })).toMatchObject({
      type: "error",
      error: { code: "QUOTA_EXCEEDED", quotaBytes: 20, usedBytes: 10, requestedBytes: 11 },
    });
    expect(kv.machine.status()).toMatchObject({ alarm: true, bytes: 10, keyCount: 1, revision: 2 });
    // Read/delete-only: even a put that would fit is refused while the alarm is up.
    expect(kv.op({ type: "put", key: "c", value: "1" })).toMatchObject({ type: "error", error: { code: "QUOTA_EXCEEDED" } });
    expect(kv.op({ type: "incr", key: "n", delta: 1 })).toMatchObject({ type: "error", error: { code: "QUOTA_EXCEEDED" } });
    expect(kv.op({ type: "get", key: "aaaa" })).toMatchObject({ type: "get" });
    expect(kv.op({ type: "delete", key: "aaaa" })).toMatchObject({ type: "delete", deleted: 1 });
    expect(kv.machine.status()).toMatchObject({ alarm: false, bytes: 0 });
    expect(kv.op({ type: "put", key: "bbbb", value: "1234567" })).toEqual({ type: "put", revision: 4 });
  });

  it("counts UTF-8 bytes, and a put that replaces a value only needs the difference", () => {
    const kv = new Harness({ quotaBytes: 12 });
    kv.op({ type: "put", key: "k", value: "€€€" }); // 1 + 9
    expect(kv.machine.status().bytes).toBe(10);
    expect(kv.op({ type: "put", key: "k", value: "€€€ab" })).toMatchObject({ type: "put" }); // 12
    expect(kv.op({ type: "put", key: "k", value: "€€€abc" })).toMatchObject({ type: "error", error: { code: "QUOTA_EXCEEDED" } });
  });

  it("a transaction that goes over the quota is refused whole, and lease expiry frees space too", () => {
    const kv = new Harness({ quotaBytes: 10 });
    kv.op({ type: "lease-grant", id: 1, ttlMs: 5 });
    const result = kv.txn(txn({ then: [{ type: "put", key: "a", value: "12345", lease: 1 }, { type: "put", key: "b", value: "1234" }] }));
    expect(result.results).toMatchObject([{ type: "put" }, { type: "error", error: { code: "QUOTA_EXCEEDED", usedBytes: 6, requestedBytes: 5 } }]);
    expect(kv.machine.status()).toMatchObject({ bytes: 0, keyCount: 0, alarm: true, revision: 1 });
    expect(kv.machine.digest()).toContain(":1:10:"); // the alarm and the quota are part of the digest
    kv.op({ type: "delete", key: "a" }); // nothing to delete: the alarm stays
    expect(kv.machine.status().alarm).toBe(true);
    expect(kv.op({ type: "put", key: "a", value: "12345", lease: 1 })).toMatchObject({ type: "error", error: { code: "QUOTA_EXCEEDED" } });
    // A new store, same story, with the space freed by a lease.
    const other = new Harness({ quotaBytes: 10 });
    other.op({ type: "lease-grant", id: 1, ttlMs: 5 });
    other.op({ type: "put", key: "a", value: "12345", lease: 1 });
    expect(other.op({ type: "put", key: "b", value: "12345" })).toMatchObject({ type: "error", error: { code: "QUOTA_EXCEEDED" } });
    expect(other.machine.status().alarm).toBe(true);
    other.advance(5);
    other.op({ type: "expire-leases" });
    expect(other.machine.status()).toMatchObject({ alarm: false, bytes: 0 });
    expect(other.op({ type: "put", key: "b", value: "12345" })).toMatchObject({ type: "put" });
  });
});
