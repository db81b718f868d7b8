import { describe, expect, it } from "vitest";
import { KvMachine, type KvOp, SnapshotInvalidError, txn } from "../src/index.js";
import { Harness } from "./harness.js";
import { observe } from "./observe.js";

/** A store with history, tombstones, compaction, leases (one due soon), an alarm and a transaction. */
function richStore(kv: Harness): void {
  const ops: KvOp[] = [
    { type: "lease-grant", id: 3, ttlMs: 50 },
    { type: "lease-grant", id: 8, ttlMs: 100_000 },
    { type: "put", key: "a", value: "1" },
    { type: "put", key: "b", value: "2", lease: 3 },
    { type: "put", key: "c", value: "3", lease: 8 },
    { type: "put", key: "a", value: "11" },
    { type: "delete", key: "c" },
    { type: "put", key: "c", value: "33", lease: 8 },
    { type: "put", key: "d/1", value: "€" },
    { type: "compact", revision: 4 },
    { type: "incr", key: "n", delta: "12345678901234567890" },
  ];
  for (const op of ops) kv.op(op);
  kv.txn(txn({ then: [{ type: "put", key: "t1", value: "x" }, { type: "delete", key: "a" }] }));
  kv.op({ type: "put", key: "huge", value: "x".repeat(200) }); // over the quota: raises the alarm
}

describe("snapshots", () => {
  it("restore gives an equal state: equal digest and equal answers to every query", async () => {
    const source = new Harness({ quotaBytes: 150 });
    richStore(source);
    expect(source.machine.status().alarm).toBe(true);
    const snapshot = await source.host.beginSnapshot().write();
    const target = new Harness({ quotaBytes: 150 }, "client-2");
    target.restore(snapshot);
    expect(target.machine.digest()).toBe(source.machine.digest());
    expect(observe(target.machine)).toEqual(observe(source.machine));
  });

  it("a restored machine goes on exactly like the original (leases expire at the same command, revisions continue)", async () => {
    const source = new Harness({ quotaBytes: 150 });
    richStore(source);
    const snapshot = await source.host.beginSnapshot().write();
    const target = new Harness({ quotaBytes: 150 });
    target.restore(snapshot);
    const more: KvOp[] = [{ type: "delete", key: "t1" }, { type: "put", key: "e", value: "5" }, { type: "compact", revision: 9 }, { type: "range", start: "", revision: 9 }];
    for (const harness of [source, target]) {
      harness.time = 10_000; // lease 3 is due
      for (const op of more) harness.op(op);
    }
    expect(target.machine.digest()).toBe(source.machine.digest());
    expect(observe(target.machine)).toEqual(observe(source.machine));
  });

  it("captures the state when taken: writes after it are not in the bytes", async () => {
    const source = new Harness();
    richStore(source);
    const expected = observe(source.machine);
    const serialize = source.machine.snapshot();
    source.op({ type: "put", key: "a", value: "later" });
    source.op({ type: "delete-range", start: "", end: "z" });
    for (let index = 0; index < 2_000; index += 1) source.op({ type: "put", key: `bulk/${index}`, value: "v" }); // splits the shared chunks
    const restored = new KvMachine();
    restored.restore(await serialize());
    expect(observe(restored)).toEqual(expected);
  });

  it("equal states give equal bytes", () => {
    const first = new Harness();
    const second = new Harness();
    richStore(first);
    richStore(second);
    expect(first.machine.snapshot()()).toEqual(second.machine.snapshot()());
  });

  describe("bad bytes are a SnapshotInvalidError and leave the state untouched", () => {
    // The snapshot's lines as one object (the header's fields, `keys` and `events` as arrays), to change and write back.
    const good = (() => {
      const kv = new Harness();
      richStore(kv);
      const lines = new TextDecoder().decode(kv.machine.snapshot()() as Uint8Array).trimEnd().split("\n").map((line) => JSON.parse(line));
      const header = lines[0] as Record<string, unknown> & { keys: number; events: number };
      return { ...header, keys: lines.slice(1, 1 + header.keys), events: lines.slice(1 + header.keys) } as Record<string, unknown>;
    })();
    const encodeLines = (json: Record<string, any>): Uint8Array => {
      const { keys, events, ...header } = json;
      const lines = [{ ...header, keys: keys.length, events: events.length }, ...keys, ...events];
      return new TextEncoder().encode(lines.map((line) => `${JSON.stringify(line)}\n`).join(""));
    };
    const mutate = (change: (json: Record<string, any>) => void): Uint8Array => {
      const copy = structuredClone(good);
      change(copy);
      return encodeLines(copy);
    };

    it("the lines written back unchanged restore; so does the same state as a version 1 document", () => {
      for (const bytes of [encodeLines(good), new TextEncoder().encode(JSON.stringify({ ...good, version: 1 }))]) {
        const kv = new Harness();
        kv.machine.restore(bytes);
        const expected = new Harness();
        richStore(expected);
        expect(observe(kv.machine)).toEqual(observe(expected.machine));
      }
    });
    const cases: [string, Uint8Array, RegExp][] = [
      ["empty", new Uint8Array(), /not JSON/],
      ["not UTF-8", new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), /not UTF-8/],
      ["not JSON", new TextEncoder().encode("{keys: ["), /not JSON/],
      ["another format", mutate((json) => (json.format = "other")), /format/],
      ["a future version", mutate((json) => (json.version = 3)), /version/],
      ["a key line missing", new TextEncoder().encode(new TextDecoder().decode(mutate(() => undefined)).split("\n").filter((_, index) => index !== 1).join("\n")), /key line|announced/],
      ["bytes after the last line", new Uint8Array([...mutate(() => undefined), 0x7b, 0x7d, 0x0a]), /after the last/],
      ["a wrong field type", mutate((json) => (json.revision = "12")), /revision/],
      ["keys out of order", mutate((json) => json.keys.reverse()), /out of order/],
      ["a broken version chain", mutate((json) => (json.keys[0][1][1][2] = 7)), /does not add up|version/],
      ["a key on a missing lease", mutate((json) => (json.leases = [])), /missing lease/],
      ["compaction after the revision", mutate((json) => (json.compactRevision = 1_000)), /compactRevision/],
      ["history in the future", mutate((json) => (json.keys[0][1][0][0] = 1_000)), /modRevision/],
      ["events out of order", mutate((json) => json.events.reverse()), /events out of revision order/],
    ];
    it.each(cases)("%s", (_name, bytes, reason) => {
      const kv = new Harness();
      kv.op({ type: "put", key: "mine", value: "stays" });
      const before = observe(kv.machine);
      expect(() => kv.machine.restore(bytes)).toThrow(SnapshotInvalidError);
      expect(() => kv.machine.restore(bytes)).toThrow(reason);
      expect(observe(kv.machine)).toEqual(before);
      kv.op({ type: "put", key: "still", value: "works" });
    });

    it("random garbage never crashes the decoder", () => {
      let state = 7;
      for (let round = 0; round < 300; round += 1) {
        const bytes = new Uint8Array(1 + (round % 40));
        for (let index = 0; index < bytes.length; index += 1) {
          state = (Math.imul(state, 1103515245) + 12345) >>> 0;
          bytes[index] = state >>> 24;
        }
        const machine = new KvMachine();
        expect(() => machine.restore(bytes)).toThrow(SnapshotInvalidError);
      }
    });
  });
});

describe("determinism", () => {
  it("two machines fed the same commands have equal digests after every command", () => {
    const first = new Harness({ quotaBytes: 150 });
    const second = new Harness({ quotaBytes: 150 });
    const digests: string[] = [];
    for (const kv of [first, second]) {
      richStore(kv);
      digests.push(kv.machine.digest());
    }
    expect(digests[0]).toBe(digests[1]);
    expect(observe(first.machine)).toEqual(observe(second.machine));
  });

  it("the digest tells apart states that differ in a value, a revision, a lease, or the order of history", () => {
    const base = (): Harness => {
      const kv = new Harness();
      kv.op({ type: "put", key: "a", value: "1" });
      kv.op({ type: "put", key: "b", value: "2" });
      return kv;
    };
    const digests = new Set<string>();
    digests.add(base().machine.digest());
    const value = base();
    value.op({ type: "put", key: "a", value: "x" });
    digests.add(value.machine.digest());
    const same = base();
    same.op({ type: "put", key: "a", value: "1" }); // same value, new revision and version
    digests.add(same.machine.digest());
    const lease = base();
    lease.op({ type: "lease-grant", id: 1, ttlMs: 10 });
    digests.add(lease.machine.digest());
    const swapped = new Harness();
    swapped.op({ type: "put", key: "b", value: "2" });
    swapped.op({ type: "put", key: "a", value: "1" });
    digests.add(swapped.machine.digest());
    expect(digests.size).toBe(5);
  });

  it("the digest ignores how the state was reached when the state is equal (restored vs applied)", () => {
    const applied = new Harness();
    applied.op({ type: "put", key: "a", value: "1" });
    const restored = new KvMachine();
    restored.restore(applied.machine.snapshot()() as Uint8Array);
    expect(restored.digest()).toBe(applied.machine.digest());
  });
});
