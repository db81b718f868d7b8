import { describe, expect, it } from "vitest";
import { type KvEvent, type WatchBatch, type WatchEnd, WatchHub, prefixRange } from "../src/index.js";
import { Harness } from "./harness.js";

/** A sink that records what it is sent; `buffered` plays the connection's queue. */
class RecordingSink {
  readonly batches: WatchBatch[] = [];
  ended: WatchEnd | undefined;
  buffered = 0;
  send(batch: WatchBatch): void {
    this.batches.push(batch);
  }
  end(reason: WatchEnd): void {
    this.ended = reason;
  }
  get bufferedBytes(): number {
    return this.buffered;
  }
  get events(): KvEvent[] {
    return this.batches.flatMap((batch) => [...batch.events]);
  }
}

function setup(options: ConstructorParameters<typeof WatchHub>[1] = {}) {
  const harness = new Harness();
  let now = 0;
  const hub = new WatchHub(harness.machine, options, () => now);
  const put = (key: string, value: string) => {
    harness.op({ type: "put", key, value });
    hub.onApplied();
  };
  return { harness, hub, put, tick: (ms: number) => (now += ms) };
}

describe("WatchHub", () => {
  it("tells a watch from now which revision it starts after, then sends each change in its range once", () => {
    const { harness, hub, put } = setup();
    put("a/0", "before");
    const sink = new RecordingSink();
    hub.watch(prefixRange("a/"), 0, sink);
    expect(sink.batches).toEqual([{ revision: harness.machine.revision, events: [] }]);
    put("a/1", "x");
    put("b/1", "outside");
    put("a/2", "y");
    expect(sink.events.map((event) => [event.key, event.revision])).toEqual([
      ["a/1", harness.machine.revision - 2],
      ["a/2", harness.machine.revision],
    ]);
  });

  it("delivers a transaction's writes in one batch", () => {
    const { harness, hub } = setup();
    const sink = new RecordingSink();
    hub.watch(prefixRange(""), 0, sink);
    harness.txn({ type: "multi", guard: [], top: [{ type: "put", key: "k1", value: "1" }, { type: "put", key: "k2", value: "2" }, { type: "delete", key: "k0" }], fop: [] });
    hub.onApplied();
    const withEvents = sink.batches.filter((batch) => batch.events.length > 0);
    expect(withEvents).toHaveLength(1);
    expect(withEvents[0]?.events.map((event) => event.key)).toEqual(["k1", "k2"]);
    expect(new Set(withEvents[0]?.events.map((event) => event.revision))).toEqual(new Set([withEvents[0]?.revision]));
  });

  it("catches a watch from the past up in bounded steps without splitting a revision", () => {
    const { harness, hub } = setup({ catchUpEvents: 4 });
    const first = harness.machine.revision + 1;
    for (let index = 0; index < 5; index += 1) {
      // Each transaction writes three keys in one revision: 4-event steps must not cut one.
      harness.txn({ type: "multi", guard: [], top: [0, 1, 2].map((key) => ({ type: "put" as const, key: `k${key}`, value: `${index}` })), fop: [] });
    }
    const sink = new RecordingSink();
    hub.watch(prefixRange(""), first, sink);
    expect(sink.events).toHaveLength(15);
    for (const batch of sink.batches) {
      const revisions = new Set(batch.events.map((event) => event.revision));
      for (const revision of revisions) {
        expect(sink.events.filter((event) => event.revision === revision)).toEqual(batch.events.filter((event) => event.revision === revision));
      }
    }
    expect(sink.events.map((event) => event.revision)).toEqual([...sink.events.map((event) => event.revision)].sort((a, b) => a - b));
    expect(sink.batches.at(-1)?.revision).toBe(harness.machine.revision);
  });

  it("ends a watch from compacted history with COMPACTED and the revision to restart from", () => {
    const { harness, hub, put } = setup();
    for (let index = 0; index < 5; index += 1) put("k", `${index}`);
    harness.op({ type: "compact", revision: harness.machine.revision - 1 });
    hub.onApplied();
    const sink = new RecordingSink();
    hub.watch(prefixRange(""), 2, sink);
    expect(sink.ended).toEqual({ code: "COMPACTED", compactRevision: harness.machine.historyStartRevision });
    expect(hub.size).toBe(0);
  });

  it("cancels a watcher whose connection is backed up, with the revision to resume from, and never waits for it", () => {
    const { hub, put } = setup({ maxBufferedBytes: 1_000 });
    const slow = new RecordingSink();
    const fast = new RecordingSink();
    hub.watch(prefixRange(""), 0, slow);
    hub.watch(prefixRange(""), 0, fast);
    put("k", "1");
    const delivered = slow.events.length;
    slow.buffered = 5_000;
    put("k", "2");
    expect(slow.ended?.code).toBe("WATCH_SLOW");
    const resume = (slow.ended as { resumeRevision: number }).resumeRevision;
    expect(resume).toBe((slow.events.at(-1)?.revision ?? 0) + 1);
    expect(slow.events).toHaveLength(delivered);
    put("k", "3");
    expect(fast.events.map((event) => (event.type === "put" ? event.value : ""))).toEqual(["1", "2", "3"]);
    expect(hub.size).toBe(1);
  });

  it("resuming from the revision a cancelled watcher was given loses and repeats nothing", () => {
    const { hub, put } = setup({ maxBufferedBytes: 1_000 });
    const first = new RecordingSink();
    hub.watch(prefixRange(""), 0, first);
    for (let index = 0; index < 3; index += 1) put(`k${index}`, "v");
    first.buffered = 10_000;
    for (let index = 3; index < 6; index += 1) put(`k${index}`, "v");
    const resume = (first.ended as { resumeRevision: number }).resumeRevision;
    const second = new RecordingSink();
    hub.watch(prefixRange(""), resume, second);
    expect([...first.events, ...second.events].map((event) => event.key)).toEqual(["k0", "k1", "k2", "k3", "k4", "k5"]);
  });

  it("sends progress to an idle watcher at most once per interval, and stops on close", () => {
    const { hub, put, tick } = setup({ progressIntervalMs: 1_000 });
    const sink = new RecordingSink();
    hub.watch(prefixRange("a/"), 0, sink);
    put("b/1", "x");
    expect(sink.batches).toHaveLength(1);
    tick(1_000);
    put("b/2", "x");
    expect(sink.batches).toHaveLength(2);
    expect(sink.batches[1]?.events).toEqual([]);
    hub.close();
    expect(sink.ended?.code).toBe("STOPPED");
    expect(hub.size).toBe(0);
  });

  it("ends every watcher with NO_LEADER and its own resume revision when the replica loses its leader", () => {
    const { hub, put } = setup();
    const early = new RecordingSink();
    hub.watch(prefixRange(""), 0, early);
    put("k", "1");
    const late = new RecordingSink();
    hub.watch(prefixRange(""), 0, late);
    hub.close("NO_LEADER");
    expect(early.ended).toEqual({ code: "NO_LEADER", resumeRevision: (early.batches.at(-1)?.revision ?? 0) + 1 });
    expect(late.ended).toEqual({ code: "NO_LEADER", resumeRevision: (late.batches.at(-1)?.revision ?? 0) + 1 });
  });

  it("a stopped watcher gets nothing more", () => {
    const { hub, put } = setup();
    const sink = new RecordingSink();
    const stop = hub.watch(prefixRange(""), 0, sink);
    stop();
    put("k", "v");
    expect(sink.events).toEqual([]);
  });
});
