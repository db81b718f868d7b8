import { collectChunks } from "@synod/core";
import { describe, expect, it } from "vitest";
import { KvMachine, txnOutcome } from "../src/index.js";
import { Harness } from "./harness.js";

describe("fenced writes", () => {
  it("apply with the highest token seen so far, and refuse a lower one without writing", () => {
    const kv = new Harness();
    expect(kv.op({ type: "put", key: "job/output", value: "by 5", fence: { name: "jobs/lock", token: 5 } })).toMatchObject({ type: "put" });
    expect(kv.op({ type: "put", key: "job/output", value: "by 7", fence: { name: "jobs/lock", token: 7 } })).toMatchObject({ type: "put" });
    const revision = kv.machine.revision;
    expect(kv.op({ type: "put", key: "job/output", value: "by 6, late", fence: { name: "jobs/lock", token: 6 } })).toMatchObject({
      type: "error",
      error: { code: "FENCED", name: "jobs/lock", token: 6, highestToken: 7 },
    });
    expect(kv.op({ type: "delete", key: "job/output", fence: { name: "jobs/lock", token: 6 } })).toMatchObject({ error: { code: "FENCED" } });
    expect(kv.op({ type: "incr", key: "job/count", delta: 1, fence: { name: "jobs/lock", token: 1 } })).toMatchObject({ error: { code: "FENCED" } });
    expect(kv.machine.revision).toBe(revision);
    expect(kv.query({ type: "get", key: "job/output" })).toMatchObject({ kv: { value: "by 7" } });
    // The same token again is still the holder's: allowed.
    expect(kv.op({ type: "put", key: "job/output", value: "by 7 again", fence: { name: "jobs/lock", token: 7 } })).toMatchObject({ type: "put" });
    // Fences are per name.
    expect(kv.op({ type: "put", key: "other", value: "x", fence: { name: "other/lock", token: 1 } })).toMatchObject({ type: "put" });
  });

  it("a transaction with a stale fenced write is refused whole, including a fence it raised earlier", () => {
    const kv = new Harness();
    kv.op({ type: "put", key: "a", value: "0", fence: { name: "L", token: 10 } });
    const result = txnOutcome(
      kv.txn({
        type: "multi",
        guard: [],
        top: [
          { type: "put", key: "b", value: "1", fence: { name: "M", token: 3 } },
          { type: "put", key: "a", value: "stale", fence: { name: "L", token: 9 } },
        ],
        fop: [],
      }),
    );
    expect(result).toMatchObject({ ok: false, error: { code: "FENCED", name: "L" } });
    expect(kv.query({ type: "get", key: "b" })).toMatchObject({ kv: null });
    // M's fence was rolled back with the transaction: token 1 is still fine.
    expect(kv.op({ type: "put", key: "b", value: "ok", fence: { name: "M", token: 1 } })).toMatchObject({ type: "put" });
  });

  it("fences survive a snapshot: the digest matches and a stale token is still refused", async () => {
    const kv = new Harness();
    kv.op({ type: "put", key: "a", value: "1", fence: { name: "L", token: 42 } });
    const copy = new KvMachine();
    copy.restore(await collectChunks(kv.machine.snapshot()()));
    expect(copy.digest()).toBe(kv.machine.digest());
    const context = { slot: 100, time: 5_000, session: "s", seq: 1 };
    expect(copy.apply({ type: "put", key: "a", value: "late", fence: { name: "L", token: 41 } }, context)).toMatchObject({ error: { code: "FENCED", highestToken: 42 } });
  });

  it("the digest differs when only a fence differs", () => {
    const one = new Harness();
    const two = new Harness();
    one.op({ type: "put", key: "a", value: "1", fence: { name: "L", token: 1 } });
    two.op({ type: "put", key: "a", value: "1", fence: { name: "L", token: 2 } });
    expect(one.machine.digest()).not.toBe(two.machine.digest());
  });
});
