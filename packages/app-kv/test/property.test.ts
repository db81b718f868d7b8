import { type CommandBody, SeededRandom } from "@synod/core";
import { describe, expect, it } from "vitest";
import { type CompareOperator, type KvOp, type KvTest, type KvTxnOp, KvMachine, prefixRange } from "../src/index.js";
import { Harness } from "./harness.js";
import { observe } from "./observe.js";
import { ReferenceKv } from "./reference-model.js";

/*
 * The machine, driven through core's StateMachineHost by seeded random
 * commands (single ops and MultiOps, with leases expiring by log time, a small
 * quota, compactions and reads at old revisions), must answer every command
 * exactly as the naive reference model does. Along the way: a replica that
 * restores a snapshot must keep matching, and a second machine fed the same
 * commands must keep the same digest. A failure prints its seed.
 */

const KEYS = ["a", "a/1", "a/2", "b", "b/x", "c", "n", "zz"];
const OPERATORS: CompareOperator[] = ["equal", "not-equal", "greater", "less"];

class Generator {
  constructor(
    private readonly random: SeededRandom,
    private readonly model: ReferenceKv,
  ) {}

  pick<T>(items: readonly T[]): T {
    return items[this.random.integer(items.length)] as T;
  }

  key(): string {
    return this.pick(KEYS);
  }

  value(): string {
    return this.random.chance(0.3) ? String(this.random.integer(100) - 50) : this.pick(["", "x", "yy", "hello", "é", "🙂", "v".repeat(1 + this.random.integer(16)), "w".repeat(1 + this.random.integer(16))]);
  }

  lease(): number {
    return this.random.chance(0.7) ? 0 : 1 + this.random.integer(4);
  }

  /** A revision from below the compaction point to just past the current one. */
  revision(): number | undefined {
    if (this.random.chance(0.5)) return undefined;
    const low = Math.max(0, this.model.compactRevision - 1);
    return low + this.random.integer(this.model.revision - low + 2);
  }

  bounds(): { start: string; end?: string } {
    if (this.random.chance(0.3)) return prefixRange(this.pick(["a", "a/", "b", ""]));
    const start = this.pick(["", ...KEYS]);
    return this.random.chance(0.3) ? { start } : { start, end: this.pick(KEYS) };
  }

  txnOp(): KvTxnOp {
    const roll = this.random.integer(10);
    if (roll < 4) {
      const lease = this.lease();
      return { type: "put", key: this.key(), value: this.value(), ...(lease === 0 ? {} : { lease }), ...(this.random.chance(0.3) ? { prevKv: true } : {}) };
    }
    if (roll < 5) return { type: "delete", key: this.key(), ...(this.random.chance(0.5) ? { prevKv: true } : {}) };
    if (roll < 6) return { type: "delete-range", ...this.bounds(), ...(this.random.chance(0.5) ? { prevKv: true } : {}) };
    if (roll < 7) {
      const revision = this.revision();
      return { type: "get", key: this.key(), ...(revision === undefined ? {} : { revision }) };
    }
    if (roll < 8) return { type: "incr", key: this.random.chance(0.7) ? "n" : this.key(), delta: this.random.integer(21) - 10 };
    const revision = this.revision();
    return {
      type: "range",
      ...this.bounds(),
      ...(revision === undefined ? {} : { revision }),
      ...(this.random.chance(0.4) ? { limit: this.random.integer(4) } : {}),
      ...(this.random.chance(0.2) ? { keysOnly: true } : {}),
      ...(this.random.chance(0.2) ? { countOnly: true } : {}),
    };
  }

  op(): KvOp {
    const roll = this.random.integer(20);
    const id = 1 + this.random.integer(4);
    if (roll < 3) return { type: "lease-grant", id, ttlMs: 20 + this.random.integer(300) };
    if (roll === 3) return { type: "lease-keepalive", id };
    if (roll === 4) return { type: "lease-revoke", id };
    if (roll === 5) return { type: "expire-leases" };
    if (roll === 6) return { type: "compact", revision: Math.max(0, this.model.compactRevision - 1) + this.random.integer(this.model.revision - this.model.compactRevision + 3) };
    return this.txnOp();
  }

  test(): KvTest {
    const roll = this.random.integer(8);
    const key = this.key();
    if (roll === 0) return { type: "exists", key };
    if (roll === 1) return { type: "absent", key };
    const operator = this.pick(OPERATORS);
    const end = this.random.chance(0.2) ? { end: this.pick(KEYS) } : {};
    if (roll === 2) return { type: "compare", key, ...end, target: "value", operator, value: this.value() };
    const target = this.pick(["version", "createRevision", "modRevision", "lease"] as const);
    return { type: "compare", key, ...end, target, operator, value: this.random.integer(Math.max(3, this.model.revision + 1)) };
  }

  command(): CommandBody {
    if (this.random.chance(0.6)) return { type: "op", op: this.op() };
    const list = <T>(make: () => T, max: number): T[] => Array.from({ length: this.random.integer(max + 1) }, make);
    return { type: "multi", guard: list(() => this.test(), 2), top: list(() => this.txnOp(), 4), fop: list(() => this.txnOp(), 3) };
  }
}

async function run(seed: number, steps: number): Promise<void> {
  const random = new SeededRandom(seed);
  const quotaBytes = 20 + random.integer(30);
  const model = new ReferenceKv(quotaBytes);
  let primary = new Harness({ quotaBytes });
  const twin = new Harness({ quotaBytes });
  const generate = new Generator(random, model);
  for (let step = 0; step < steps; step += 1) {
    const advance = random.chance(0.3) ? random.integer(120) : 0;
    primary.advance(advance);
    twin.advance(advance);
    const bodies = Array.from({ length: 1 + random.integer(3) }, () => generate.command());
    const outcomes = primary.batch(bodies);
    twin.batch(bodies);
    for (const [index, body] of bodies.entries()) {
      const expected = model.command(body, primary.time);
      expect({ seed, step, body, outcome: outcomes[index] }).toEqual({ seed, step, body, outcome: { ok: true, result: expected } });
    }
    const status = primary.machine.status();
    const { historyStartRevision: _start, quotaBytes: _quota, type: _type, ...comparable } = status;
    expect({ seed, step, status: comparable }).toEqual({ seed, step, status: model.status() });
    expect(twin.machine.digest()).toBe(primary.machine.digest());
    primary.machine.checkInvariants();
    if (step % 25 === 24) {
      // Every readable revision, and the watch history, against the model.
      for (let revision = Math.max(1, model.compactRevision); revision <= model.revision; revision += 1) {
        const range = primary.machine.query({ type: "range", start: "", revision });
        expect({ seed, step, revision, kvs: range.type === "range" ? range.kvs : range }).toEqual({ seed, step, revision, kvs: model.rangeAt(revision) });
      }
      const from = primary.machine.historyStartRevision;
      expect(primary.machine.eventsSince(from)).toEqual(model.events(from));
    }
    if (step % 60 === 59) {
      // Replace the primary by a replica restored from its snapshot; it must carry on identically.
      const snapshot = await primary.host.beginSnapshot().write();
      const replica = new Harness({ quotaBytes });
      replica.time = primary.time;
      replica.restore(snapshot);
      expect(replica.machine.digest()).toBe(primary.machine.digest());
      expect(observe(replica.machine)).toEqual(observe(primary.machine));
      primary = replica;
    }
  }
}

describe("property: the machine matches a naive reference model", () => {
  const seeds = Array.from({ length: 12 }, (_, index) => 1_000 + index * 7919);
  it.each(seeds)("seed %i", async (seed) => {
    await run(seed, 300);
  });

  it("can fail: a machine configured with another quota disagrees with the model, and the digest shows it", () => {
    const model = new ReferenceKv(10);
    const kv = new Harness({ quotaBytes: 1_000 });
    const body: CommandBody = { type: "op", op: { type: "put", key: "k", value: "0123456789" } };
    expect(kv.batch([body])[0]).not.toEqual({ ok: true, result: model.command(body, kv.time) });
    expect(new KvMachine().digest()).not.toBe(new KvMachine({ quotaBytes: 1 }).digest());
  });
});
