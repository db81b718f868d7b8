import { describe, expect, it } from "vitest";
import { KvMachine, type KvOp, SnapshotInvalidError, txn } from "../src/index.js";
import { decodeSnapshot, decodeSnapshotStream, encodeSnapshot, encodeSnapshotChunks } from "../src/snapshot.js";
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

/** `richStore` and keys and values in two-, three- and four-byte UTF-8, so that splits fall inside characters. */
function unicodeStore(kv: Harness): void {
  richStore(kv);
  kv.op({ type: "put", key: "é/café", value: "crème brûlée" });
  kv.op({ type: "put", key: "日本/東京", value: "😀".repeat(5) });
  kv.op({ type: "put", key: "😀", value: "a😀é日" });
  kv.op({ type: "put", key: "é/café", value: "déjà vu" });
}

/** The chunks end to end (a machine's snapshot chunks come from a synchronous generator). */
function bytesOf(chunks: Iterable<Uint8Array>): Uint8Array {
  return new Uint8Array(Buffer.concat([...chunks]));
}

/** A seeded PRNG (a 32-bit LCG): the same seed, the same splits. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state;
  };
}

/** `bytes` cut at `cuts` (any order, repeats give empty chunks). */
function splitAt(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const sorted = [0, ...[...cuts].sort((a, b) => a - b), bytes.length];
  return sorted.slice(1).map((end, index) => bytes.slice(sorted[index], end));
}

/** `bytes` cut at up to 30 seeded positions, empty chunks included. */
function randomSplit(bytes: Uint8Array, seed: number): Uint8Array[] {
  const next = random(seed);
  const cuts = Array.from({ length: next() % 31 }, () => next() % (bytes.length + 1));
  return splitAt(bytes, cuts);
}

/** `bytes` cut before every UTF-8 continuation byte: every multibyte character is split. */
function splitInsideCharacters(bytes: Uint8Array): Uint8Array[] {
  const cuts: number[] = [];
  bytes.forEach((byte, index) => {
    if ((byte & 0xc0) === 0x80) cuts.push(index);
  });
  return splitAt(bytes, cuts);
}

function oneByteChunks(bytes: Uint8Array): Uint8Array[] {
  return Array.from(bytes, (byte) => Uint8Array.of(byte));
}

async function* stream(chunks: Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for (const chunk of chunks) yield chunk;
}

function thrownBy(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return undefined;
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
    restored.restore(bytesOf(serialize()));
    expect(observe(restored)).toEqual(expected);
  });

  it("equal states give equal bytes", () => {
    const first = new Harness();
    const second = new Harness();
    richStore(first);
    richStore(second);
    expect(bytesOf(first.machine.snapshot()())).toEqual(bytesOf(second.machine.snapshot()()));
  });

  describe("bad bytes are a SnapshotInvalidError and leave the state untouched", () => {
    // The snapshot's lines as one object (the header's fields, `keys` and `events` as arrays), to change and write back.
    const good = (() => {
      const kv = new Harness();
      richStore(kv);
      const lines = new TextDecoder().decode(bytesOf(kv.machine.snapshot()())).trimEnd().split("\n").map((line) => JSON.parse(line));
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

    it.each(cases)("%s, streamed in pieces: the same reason, and the state untouched", async (_name, bytes) => {
      const kv = new Harness();
      kv.op({ type: "put", key: "mine", value: "stays" });
      const digest = kv.machine.digest();
      const expected = thrownBy(() => kv.machine.restore(bytes));
      expect(expected).toBeInstanceOf(SnapshotInvalidError);
      const splits = [[bytes], oneByteChunks(bytes), splitInsideCharacters(bytes), ...[1, 2, 3].map((seed) => randomSplit(bytes, seed))];
      for (const [index, chunks] of splits.entries()) {
        const streamed = await kv.machine.restoreFrom(stream(chunks)).catch((error: unknown) => error);
        expect(streamed, `split ${index}`).toBeInstanceOf(SnapshotInvalidError);
        expect((streamed as Error).message, `split ${index}`).toBe((expected as Error).message);
        expect(kv.machine.digest()).toBe(digest);
      }
    });

    it("random garbage never crashes the decoder, whole or streamed a byte at a time", async () => {
      const next = random(7);
      for (let round = 0; round < 300; round += 1) {
        const bytes = Uint8Array.from({ length: 1 + (round % 40) }, () => next() >>> 24);
        const machine = new KvMachine();
        const expected = thrownBy(() => machine.restore(bytes));
        expect(expected, `round ${round}`).toBeInstanceOf(SnapshotInvalidError);
        const streamed = await machine.restoreFrom(stream(oneByteChunks(bytes))).catch((error: unknown) => error);
        expect((streamed as Error).message, `round ${round}`).toBe((expected as Error).message);
      }
    });
  });
});

describe("streamed snapshots", () => {
  it("any split of the bytes (seeded; inside lines and UTF-8 characters; a byte at a time) decodes to the state the whole bytes give", async () => {
    const kv = new Harness();
    unicodeStore(kv);
    const bytes = bytesOf(kv.machine.snapshot()());
    const whole = decodeSnapshot(bytes);
    expect(splitInsideCharacters(bytes).length).toBeGreaterThan(30);
    expect(await decodeSnapshotStream(stream(oneByteChunks(bytes)))).toEqual(whole);
    expect(await decodeSnapshotStream(stream(splitInsideCharacters(bytes)))).toEqual(whole);
    for (let seed = 1; seed <= 200; seed += 1) {
      expect(await decodeSnapshotStream(stream(randomSplit(bytes, seed))), `seed ${seed}`).toEqual(whole);
    }
  });

  it("restoreFrom a split stream gives what restore gives: equal digest and equal answers", async () => {
    const source = new Harness();
    unicodeStore(source);
    const bytes = bytesOf(source.machine.snapshot()());
    const restored = new KvMachine();
    restored.restore(bytes);
    expect(restored.digest()).toBe(source.machine.digest());
    const splits = [[...source.machine.snapshot()()], oneByteChunks(bytes), splitInsideCharacters(bytes), ...[1, 2, 3, 4, 5].map((seed) => randomSplit(bytes, seed))];
    for (const [index, chunks] of splits.entries()) {
      const streamed = new KvMachine();
      streamed.apply({ type: "put", key: "replaced", value: "whole" }, { slot: 1, time: 1_000, session: "s", seq: 1 });
      await streamed.restoreFrom(stream(chunks));
      expect(streamed.digest(), `split ${index}`).toBe(restored.digest());
      expect(observe(streamed), `split ${index}`).toEqual(observe(restored));
    }
  });

  it("the decoder copies what it keeps of a chunk: a source may reuse its buffer (as Node streams of Buffers may)", async () => {
    const kv = new Harness();
    unicodeStore(kv);
    const bytes = bytesOf(kv.machine.snapshot()());
    async function* reusing(): AsyncGenerator<Uint8Array> {
      const buffer = Buffer.alloc(7);
      for (let at = 0; at < bytes.length; at += buffer.length) {
        const piece = bytes.subarray(at, at + buffer.length);
        buffer.set(piece);
        yield buffer.subarray(0, piece.length);
      }
    }
    expect(await decodeSnapshotStream(reusing())).toEqual(decodeSnapshot(bytes));
  });

  it("encodeSnapshotChunks packs whole lines into chunks of at most chunkBytes, and together they are encodeSnapshot's bytes", () => {
    const kv = new Harness();
    unicodeStore(kv);
    const state = decodeSnapshot(bytesOf(kv.machine.snapshot()()));
    const whole = encodeSnapshot(state);
    for (const chunkBytes of [1, 64, 300, whole.length - 1, whole.length]) {
      const chunks = [...encodeSnapshotChunks(state, chunkBytes)];
      expect(chunks.length > 1, `chunkBytes ${chunkBytes}`).toBe(chunkBytes < whole.length);
      for (const chunk of chunks) {
        expect(chunk[chunk.length - 1]).toBe(0x0a);
        // Over the limit only as one line on its own.
        if (chunk.length > chunkBytes) expect(chunk.indexOf(0x0a)).toBe(chunk.length - 1);
      }
      expect(bytesOf(chunks)).toEqual(whole);
    }
  });

  it("a machine's snapshot of more than a chunk comes in several, and writes between them are not in the bytes", async () => {
    const source = new Harness();
    for (let index = 0; index < 1_200; index += 1) source.op({ type: "put", key: `big/${index}`, value: `${index}:${"é".repeat(500)}` });
    const digest = source.machine.digest();
    const chunks = source.machine.snapshot()();
    const first = chunks.next();
    expect(first.done).toBe(false);
    source.op({ type: "delete-range", start: "", end: "z" });
    source.op({ type: "compact", revision: source.machine.revision });
    for (let index = 0; index < 600; index += 1) source.op({ type: "put", key: `big/${index}`, value: "later" });
    const rest = [...chunks];
    expect(rest.length).toBeGreaterThan(0);
    const restored = new KvMachine();
    await restored.restoreFrom(stream([first.value as Uint8Array, ...rest]));
    expect(restored.digest()).toBe(digest);
    expect(restored.query({ type: "get", key: "big/7" })).toMatchObject({ kv: { value: `7:${"é".repeat(500)}` } });
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
    restored.restore(bytesOf(applied.machine.snapshot()()));
    expect(restored.digest()).toBe(applied.machine.digest());
  });
});
