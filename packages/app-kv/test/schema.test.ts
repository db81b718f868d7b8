import { describe, expect, expectTypeOf, it } from "vitest";
import {
  DEFAULT_LIMITS,
  type EventFromSchema,
  type KvEvent,
  type KvOp,
  type KvQuery,
  type KvTest,
  type OpFromSchema,
  type QueryFromSchema,
  type TestFromSchema,
  compareAndSet,
  parseOp,
  putIfAbsent,
  toException,
  CompactedError,
  kvErrors,
  utf8Length,
  validateCommandBody,
  validateOp,
  validateQuery,
  validateTxn,
} from "../src/index.js";

/**
 * Types and schemas agree when each is assignable to the other; that alone
 * misses an optional field one side lacks, so the types are also compared
 * exactly once `readonly` (which zod does not infer) is stripped deeply.
 */
type MutuallyAssignable<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type DeepMutable<T> = T extends readonly (infer Item)[] ? DeepMutable<Item>[] : T extends object ? { -readonly [K in keyof T]: DeepMutable<T[K]> } : T;

describe("schemas mirror the types (compile-time, checked by tsc)", () => {
  it("ops, guards, queries and events", () => {
    expectTypeOf<MutuallyAssignable<KvOp, OpFromSchema>>().toEqualTypeOf<true>();
    expectTypeOf<MutuallyAssignable<KvTest, TestFromSchema>>().toEqualTypeOf<true>();
    expectTypeOf<MutuallyAssignable<KvQuery, QueryFromSchema>>().toEqualTypeOf<true>();
    expectTypeOf<MutuallyAssignable<KvEvent, EventFromSchema>>().toEqualTypeOf<true>();
    expectTypeOf<MutuallyAssignable<KvOp, Exclude<KvOp, { type: "compact" }>>>().toEqualTypeOf<false>();
    expectTypeOf<DeepMutable<OpFromSchema>>().toEqualTypeOf<DeepMutable<KvOp>>();
    expectTypeOf<DeepMutable<TestFromSchema>>().toEqualTypeOf<DeepMutable<KvTest>>();
    expectTypeOf<DeepMutable<QueryFromSchema>>().toEqualTypeOf<DeepMutable<KvQuery>>();
    expectTypeOf<DeepMutable<EventFromSchema>>().toEqualTypeOf<DeepMutable<KvEvent>>();
  });

  it("parseOp strips nothing it should keep and accepts every documented op", () => {
    const ops: KvOp[] = [
      { type: "put", key: "k", value: "v", lease: 3, prevKv: true },
      { type: "delete", key: "k", prevKv: false },
      { type: "delete-range", start: "", end: "z" },
      { type: "get", key: "k", revision: 4 },
      { type: "range", start: "a", end: "b", limit: 3, revision: 2, keysOnly: true, countOnly: false },
      { type: "incr", key: "n", delta: "-12" },
      { type: "lease-grant", id: 1, ttlMs: 10 },
      { type: "lease-revoke", id: 1 },
      { type: "lease-keepalive", id: 1 },
      { type: "expire-leases" },
      { type: "compact", revision: 3 },
    ];
    for (const op of ops) expect(parseOp(op)).toEqual({ ok: true, value: op });
  });
});

describe("validation at the client/server boundary", () => {
  const limits = { ...DEFAULT_LIMITS, maxKeyBytes: 8, maxValueBytes: 16, maxTxnOps: 3, maxRequestBytes: 400 };

  it("enforces key and value sizes in UTF-8 bytes", () => {
    expect(validateOp({ type: "put", key: "12345678", value: "v" }, limits).ok).toBe(true);
    expect(validateOp({ type: "put", key: "123456789", value: "v" }, limits)).toMatchObject({ ok: false, error: { code: "KEY_TOO_LARGE", bytes: 9, limit: 8 } });
    expect(validateOp({ type: "put", key: "k", value: "€€€€€€" }, limits)).toMatchObject({ ok: false, error: { code: "VALUE_TOO_LARGE", bytes: 18, limit: 16 } });
    expect(validateOp({ type: "get", key: "€€€" }, limits)).toMatchObject({ ok: false, error: { code: "KEY_TOO_LARGE" } });
    expect(validateQuery({ type: "get", key: "€€€" }, limits)).toMatchObject({ ok: false, error: { code: "KEY_TOO_LARGE" } });
    expect(utf8Length("a€🙂")).toBe(1 + 3 + 4);
    expect(utf8Length("\ud800")).toBe(3);
  });

  it("rejects malformed input with a readable reason", () => {
    const result = validateOp({ type: "put", key: "", value: 3 });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.code).toBe("INVALID_REQUEST");
      expect(result.error.message.length).toBeGreaterThan(20);
    }
    expect(validateOp({ type: "put", key: "k", value: "v", extra: { deep: 1n } })).toMatchObject({ ok: true });
  });

  it("limits the guards and each branch of a transaction, and its total size", () => {
    const put = (key: string) => ({ type: "put", key, value: "v" });
    expect(validateTxn({ guard: [], top: [put("a"), put("b"), put("c")], fop: [] }, limits).ok).toBe(true);
    expect(validateTxn({ guard: [], top: [put("a"), put("b"), put("c"), put("d")], fop: [] }, limits)).toMatchObject({ ok: false, error: { code: "TOO_MANY_OPS", count: 4, limit: 3 } });
    expect(validateTxn({ guard: [1, 2, 3, 4], top: [], fop: [] }, limits)).toMatchObject({ ok: false, error: { code: "TOO_MANY_OPS" } });
    const big = (key: string) => ({ type: "put", key, value: "x".repeat(16) });
    const small = { ...limits, maxRequestBytes: 250 };
    expect(validateTxn({ guard: [], top: [big("a"), big("b")], fop: [big("a")] }, small).ok).toBe(true);
    expect(validateTxn({ guard: [], top: [big("a"), big("b"), big("c")], fop: [big("a"), big("b"), big("c")] }, small)).toMatchObject({ ok: false, error: { code: "REQUEST_TOO_LARGE", limit: 250 } });
  });

  it("refuses a branch that writes a key twice, or puts inside a range it deletes; deletes may overlap", () => {
    expect(validateTxn({ guard: [], top: [{ type: "put", key: "a", value: "1" }, { type: "incr", key: "a", delta: 1 }], fop: [] })).toMatchObject({ ok: false, error: { code: "DUPLICATE_KEY", key: "a" } });
    expect(validateTxn({ guard: [], top: [{ type: "delete-range", start: "a", end: "c" }, { type: "put", key: "b", value: "1" }], fop: [] })).toMatchObject({ ok: false, error: { code: "DUPLICATE_KEY", key: "b" } });
    expect(validateTxn({ guard: [], top: [{ type: "delete", key: "a" }, { type: "delete-range", start: "a" }], fop: [{ type: "put", key: "a", value: "1" }] }).ok).toBe(true);
  });

  it("keeps lease and compaction operations out of transactions", () => {
    expect(validateTxn({ guard: [], top: [{ type: "lease-grant", id: 1, ttlMs: 5 }], fop: [] })).toMatchObject({ ok: false, error: { code: "INVALID_REQUEST" } });
    expect(validateTxn({ guard: [], top: [], fop: [{ type: "compact", revision: 2 }] })).toMatchObject({ ok: false, error: { code: "INVALID_REQUEST" } });
  });

  it("validates whole command bodies, including the helpers' MultiOps", () => {
    expect(validateCommandBody(putIfAbsent("k", "v")).ok).toBe(true);
    expect(validateCommandBody(compareAndSet("k", { modRevision: 3 }, "v")).ok).toBe(true);
    expect(validateCommandBody({ type: "open-session" }).ok).toBe(true);
    expect(validateCommandBody({ type: "op", op: { type: "nope" } }).ok).toBe(false);
    expect(validateCommandBody({ type: "multi", guard: [{ type: "compare", key: "k", target: "value", operator: "equal", value: 3 }], top: [], fop: [] }).ok).toBe(false);
  });

  it("errors become exceptions users can catch by class", () => {
    expect(toException(kvErrors.compacted(5))).toBeInstanceOf(CompactedError);
    expect(toException(kvErrors.leaseNotFound(5))).toMatchObject({ code: "LEASE_NOT_FOUND", message: expect.stringContaining("grant a new lease") });
  });
});
