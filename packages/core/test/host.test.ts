import { describe, expect, it } from "vitest";
import {
  type ApplyContext,
  type ChosenEntry,
  type Command,
  type CommandBody,
  InvariantError,
  type MultiOpResult,
  type StateMachine,
  StateMachineHost,
  type Value,
} from "../src/index.js";

// ---------------------------------------------------------------- fixtures

type Op = { readonly kind: "set"; readonly key: string; readonly value: number } | { readonly kind: "incr"; readonly key: string };
type Test = { readonly key: string; readonly equals: number | undefined };

/** A small KV machine that counts how often `apply` ran and remembers each call's context. */
class CounterMachine implements StateMachine<Op, Test, number, string, number | undefined> {
  values = new Map<string, number>();
  applies = 0;
  tests = 0;
  contexts: ApplyContext[] = [];
  restoredFrom: Uint8Array | undefined;

  apply(op: Op, context: ApplyContext): number {
    this.applies += 1;
    this.contexts.push(context);
    const next = op.kind === "set" ? op.value : (this.values.get(op.key) ?? 0) + 1;
    this.values.set(op.key, next);
    return next;
  }
  test(test: Test): boolean {
    this.tests += 1;
    return this.values.get(test.key) === test.equals;
  }
  query(key: string): number | undefined {
    return this.values.get(key);
  }
  snapshot(): () => Promise<Uint8Array> {
    const copy = [...this.values].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    // Serialized later, asynchronously, from the copy taken now.
    return async () => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      return new TextEncoder().encode(JSON.stringify(copy));
    };
  }
  restore(data: Uint8Array): void {
    this.restoredFrom = data;
    this.values = new Map(JSON.parse(new TextDecoder().decode(data)) as [string, number][]);
  }
  digest(): string {
    return JSON.stringify([...this.values].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
}

const VOTERS = ["a", "b", "c"];

function newHost(ttlMs = 1000): { host: StateMachineHost<Op, Test, number, string, number | undefined>; machine: CounterMachine } {
  const machine = new CounterMachine();
  return { host: new StateMachineHost(machine, { sessionTtlMs: ttlMs, voters: VOTERS }), machine };
}

const open = (session: string, seq = 0): Command => ({ session, seq, body: { type: "open-session" } });
const close = (session: string, seq: number): Command => ({ session, seq, body: { type: "close-session" } });
const op = (session: string, seq: number, body: Op): Command => ({ session, seq, body: { type: "op", op: body } });
const incr = (session: string, seq: number, key = "x"): Command => op(session, seq, { kind: "incr", key });
const multi = (session: string, seq: number, guard: Test[], top: Op[], fop: Op[]): Command => {
  const body: CommandBody = { type: "multi", guard, top, fop };
  return { session, seq, body };
};
const batch = (slot: number, time: number, ...commands: Command[]): ChosenEntry => ({ slot, value: { type: "batch", time, commands } });
const noop = (slot: number): ChosenEntry => ({ slot, value: { type: "noop" } });

/** Feeds entries in order and returns the applied commands of the last one. */
function feed(host: StateMachineHost<Op, Test, number, string, number | undefined>, entries: readonly ChosenEntry[]) {
  let last: ReturnType<typeof host.apply> = [];
  for (const entry of entries) last = host.apply(entry);
  return last;
}

// ---------------------------------------------------------------- exactly once

describe("StateMachineHost: exactly-once sessions", () => {
  it("applies a command once and returns its result", () => {
    const { host, machine } = newHost();
    const [opened] = host.apply(batch(0, 10, open("s")));
    expect(opened).toMatchObject({ slot: 0, outcome: { ok: true, result: null }, duplicate: false });
    const applied = host.apply(batch(1, 20, incr("s", 1), incr("s", 2)));
    expect(applied.map((a) => a.outcome)).toEqual([
      { ok: true, result: 1 },
      { ok: true, result: 2 },
    ]);
    expect(applied.every((a) => a.slot === 1 && !a.duplicate)).toBe(true);
    expect(machine.applies).toBe(2);
    expect(host.query("x")).toBe(2);
    expect(host.appliedThrough).toBe(1);
    expect(host.cachedOutcome("s", 2)).toEqual({ ok: true, result: 2 });
    // Only the last result per session is kept.
    expect(host.cachedOutcome("s", 1)).toBeUndefined();
  });

  it("answers a retry of the same (session, seq) from the session table without applying again", () => {
    const { host, machine } = newHost();
    feed(host, [batch(0, 10, open("s")), batch(1, 20, incr("s", 1))]);
    expect(machine.applies).toBe(1);
    // A retry in a later slot (the client resent after a leader change).
    const [retry] = host.apply(batch(2, 30, incr("s", 1)));
    expect(retry).toMatchObject({ slot: 2, duplicate: true, outcome: { ok: true, result: 1 } });
    // And a retry in the same batch as the original.
    const sameBatch = host.apply(batch(3, 40, incr("s", 2), incr("s", 2)));
    expect(sameBatch.map((a) => [a.duplicate, a.outcome])).toEqual([
      [false, { ok: true, result: 2 }],
      [true, { ok: true, result: 2 }],
    ]);
    expect(machine.applies).toBe(2);
    expect(host.query("x")).toBe(2);
  });

  it("the retry check catches the planted bug that ignores the session table", () => {
    const machine = new CounterMachine();
    const host = new StateMachineHost(machine, { sessionTtlMs: 1000, voters: VOTERS, bugs: new Set(["ignore-session-table"] as const) });
    feed(host, [batch(0, 10, open("s")), batch(1, 20, incr("s", 1))]);
    const [retry] = host.apply(batch(2, 30, incr("s", 1)));
    // With the bug the retry is applied again: exactly what the test above forbids.
    expect(retry?.duplicate).toBe(false);
    expect(machine.applies).toBe(2);
  });

  it("refuses a sequence number older than the session's last with STALE_SEQUENCE and leaves the state alone", () => {
    const { host, machine } = newHost();
    feed(host, [batch(0, 10, open("s")), batch(1, 20, incr("s", 1)), batch(2, 30, incr("s", 2))]);
    const [stale] = host.apply(batch(3, 40, incr("s", 1)));
    expect(stale?.outcome.ok).toBe(false);
    expect(stale?.outcome).toMatchObject({ ok: false, error: { code: "STALE_SEQUENCE" } });
    expect(machine.applies).toBe(2);
    expect(host.query("x")).toBe(2);
    // The session still answers its last request.
    expect(host.cachedOutcome("s", 2)).toEqual({ ok: true, result: 2 });
  });

  it("refuses commands of an unknown session with SESSION_EXPIRED", () => {
    const { host, machine } = newHost();
    const [unknown] = host.apply(batch(0, 10, incr("ghost", 1)));
    expect(unknown).toMatchObject({ duplicate: false, outcome: { ok: false, error: { code: "SESSION_EXPIRED" } } });
    if (unknown?.outcome.ok === false) expect(unknown.outcome.error.message).toContain("ghost");
    const [multiUnknown] = host.apply(batch(1, 20, multi("ghost", 2, [], [{ kind: "incr", key: "x" }], [])));
    expect(multiUnknown?.outcome).toMatchObject({ ok: false, error: { code: "SESSION_EXPIRED" } });
    expect(machine.applies).toBe(0);
    expect(machine.tests).toBe(0);
    expect(host.hasSession("ghost")).toBe(false);
  });

  it("opens a session idempotently: a second open keeps the session's table entry", () => {
    const { host } = newHost();
    const [first] = host.apply(batch(0, 10, open("s")));
    expect(first).toMatchObject({ duplicate: false, outcome: { ok: true, result: null } });
    host.apply(batch(1, 20, incr("s", 1)));
    const [again] = host.apply(batch(2, 30, open("s")));
    expect(again).toMatchObject({ duplicate: true, outcome: { ok: true, result: null } });
    expect(host.sessionCount).toBe(1);
    // The re-open did not reset the session: seq 1 is still the cached last request.
    expect(host.cachedOutcome("s", 1)).toEqual({ ok: true, result: 1 });
    const [retry] = host.apply(batch(3, 40, incr("s", 1)));
    expect(retry?.duplicate).toBe(true);
    expect(host.query("x")).toBe(1);
  });

  it("forgets a closed session: its cached result is gone and later commands are refused", () => {
    const { host, machine } = newHost();
    feed(host, [batch(0, 10, open("s"), open("t")), batch(1, 20, incr("s", 1))]);
    const [closed] = host.apply(batch(2, 30, close("s", 2)));
    expect(closed).toMatchObject({ duplicate: false, outcome: { ok: true, result: null } });
    expect(host.hasSession("s")).toBe(false);
    expect(host.hasSession("t")).toBe(true);
    expect(host.sessionCount).toBe(1);
    expect(host.cachedOutcome("s", 1)).toBeUndefined();
    const [after] = host.apply(batch(3, 40, incr("s", 3)));
    expect(after?.outcome).toMatchObject({ ok: false, error: { code: "SESSION_EXPIRED" } });
    expect(machine.applies).toBe(1);
  });
});

// ---------------------------------------------------------------- expiry

describe("StateMachineHost: session expiry by log time", () => {
  /** A log where "idle" opens at 0 and never speaks again, and "busy" speaks every 400 ms. */
  function expiryLog(): ChosenEntry[] {
    const entries: ChosenEntry[] = [batch(0, 0, open("idle"), open("busy"))];
    let seq = 1;
    for (let time = 400; time <= 3200; time += 400) {
      const slot = entries.length;
      entries.push(slot % 3 === 0 ? noop(slot) : batch(slot, time, incr("busy", seq++)));
    }
    return entries;
  }

  it("expires the same sessions at the same slot on every host fed the same entries", () => {
    const log = expiryLog();
    const trace = (): string[] => {
      const { host } = newHost(1000);
      return log.map((entry) => {
        host.apply(entry);
        return `${entry.slot}:${host.hasSession("idle")}:${host.hasSession("busy")}:${host.time}`;
      });
    };
    const first = trace();
    expect(trace()).toEqual(first);
    // "idle" goes at the first batch whose time is more than 1000 ms past its last activity (0),
    // decided by the batch's time and nothing else.
    const idleGone = first.findIndex((line) => line.split(":")[1] === "false");
    const goneEntry = log[idleGone];
    expect(goneEntry?.value.type).toBe("batch");
    expect((goneEntry?.value as Extract<Value, { type: "batch" }>).time).toBeGreaterThan(1000);
    for (const line of first.slice(0, idleGone)) expect(line.split(":")[1]).toBe("true");
    for (const line of first.slice(idleGone)) expect(line.split(":")[1]).toBe("false");
  });

  it("keeps a session that is active within the TTL, and refuses the idle one afterwards", () => {
    const { host } = newHost(1000);
    feed(host, expiryLog());
    expect(host.time).toBe(3200);
    expect(host.hasSession("busy")).toBe(true);
    expect(host.hasSession("idle")).toBe(false);
    const [late] = host.apply(batch(host.appliedThrough + 1, 3300, incr("idle", 1)));
    expect(late?.outcome).toMatchObject({ ok: false, error: { code: "SESSION_EXPIRED" } });
  });

  it("expires only what is idle for longer than the TTL (idle exactly TTL survives)", () => {
    const { host } = newHost(1000);
    host.apply(batch(0, 5000, open("s")));
    host.apply(batch(1, 6000, open("other")));
    expect(host.hasSession("s")).toBe(true);
    host.apply(batch(2, 6001, open("other")));
    expect(host.hasSession("s")).toBe(false);
    expect(host.hasSession("other")).toBe(true);
  });

  it("does not expire on no-op slots or on a batch whose time is behind the log clock", () => {
    const { host } = newHost(1000);
    host.apply(batch(0, 1000, open("s")));
    host.apply(noop(1));
    host.apply(batch(2, 500, open("t")));
    expect(host.time).toBe(1000);
    expect(host.hasSession("s")).toBe(true);
    // Real time elapsing matters not at all: only a later batch's time expires "s".
    host.apply(noop(3));
    expect(host.hasSession("s")).toBe(true);
    host.apply(batch(4, 2001, open("u")));
    expect(host.hasSession("s")).toBe(false);
    // "t" was opened at log time 1000 (the clock never goes back), so it expired with "s".
    expect(host.hasSession("t")).toBe(false);
    expect(host.hasSession("u")).toBe(true);
  });

  it("counts a retried request as activity", () => {
    const { host } = newHost(1000);
    feed(host, [batch(0, 0, open("s"), open("t")), batch(1, 100, incr("s", 1))]);
    host.apply(batch(2, 900, incr("s", 1))); // a duplicate, answered from the table
    host.apply(batch(3, 1500, open("u")));
    expect(host.hasSession("s")).toBe(true);
    expect(host.hasSession("t")).toBe(false);
  });

  it("hands the log time of the batch to the application", () => {
    const { host, machine } = newHost(10_000);
    feed(host, [batch(0, 10, open("s")), batch(1, 1234, incr("s", 7))]);
    expect(machine.contexts).toEqual([{ slot: 1, time: 1234, session: "s", seq: 7 }]);
  });
});

// ---------------------------------------------------------------- MultiOp

describe("StateMachineHost: MultiOp", () => {
  const set = (key: string, value: number): Op => ({ kind: "set", key, value });

  it("applies top when every guard holds and fop otherwise, in one slot", () => {
    const { host, machine } = newHost();
    feed(host, [batch(0, 10, open("s")), batch(1, 20, op("s", 1, set("x", 1)), op("s", 2, set("y", 2)))]);
    const [taken] = host.apply(batch(2, 30, multi("s", 3, [{ key: "x", equals: 1 }, { key: "y", equals: 2 }], [set("x", 10), set("y", 20)], [set("z", -1)])));
    expect(taken).toMatchObject({ slot: 2, duplicate: false });
    expect(taken?.outcome).toEqual({ ok: true, result: { succeeded: true, results: [10, 20] } satisfies MultiOpResult<number> });
    expect([host.query("x"), host.query("y"), host.query("z")]).toEqual([10, 20, undefined]);

    // One guard fails: no `top` op runs, every `fop` op does.
    const appliesBefore = machine.applies;
    const [refused] = host.apply(batch(3, 40, multi("s", 4, [{ key: "x", equals: 10 }, { key: "y", equals: 999 }], [set("x", 11), set("y", 21)], [set("z", 1), { kind: "incr", key: "z" }])));
    expect(refused?.outcome).toEqual({ ok: true, result: { succeeded: false, results: [1, 2] } });
    expect([host.query("x"), host.query("y"), host.query("z")]).toEqual([10, 20, 2]);
    expect(machine.applies - appliesBefore).toBe(2);
    // Every op of the MultiOp ran at the same slot and sequence number.
    expect(machine.contexts.slice(-2).map((c) => [c.slot, c.seq])).toEqual([
      [3, 4],
      [3, 4],
    ]);
  });

  it("evaluates every guard before applying any op (the branch cannot see its own writes)", () => {
    const { host } = newHost();
    host.apply(batch(0, 10, open("s")));
    // Both guards read x === undefined; if the first top op ran between them the second would fail.
    const [result] = host.apply(batch(1, 20, multi("s", 1, [{ key: "x", equals: undefined }, { key: "x", equals: undefined }], [set("x", 5), { kind: "incr", key: "x" }], [set("x", -1)])));
    expect(result?.outcome).toEqual({ ok: true, result: { succeeded: true, results: [5, 6] } });
  });

  it("treats an empty guard as holding, and an empty branch as a no-op", () => {
    const { host, machine } = newHost();
    host.apply(batch(0, 10, open("s")));
    const [a, b] = host.apply(batch(1, 20, multi("s", 1, [], [set("k", 1)], [set("k", 2)]), multi("s", 2, [{ key: "k", equals: 0 }], [set("k", 3)], [])));
    expect(a?.outcome).toEqual({ ok: true, result: { succeeded: true, results: [1] } });
    expect(b?.outcome).toEqual({ ok: true, result: { succeeded: false, results: [] } });
    expect(machine.applies).toBe(1);
  });

  it("answers a retried MultiOp from the session table without re-evaluating it", () => {
    const { host, machine } = newHost();
    feed(host, [batch(0, 10, open("s")), batch(1, 20, multi("s", 1, [{ key: "x", equals: undefined }], [{ kind: "incr", key: "x" }], []))]);
    const tests = machine.tests;
    const [retry] = host.apply(batch(2, 30, multi("s", 1, [{ key: "x", equals: undefined }], [{ kind: "incr", key: "x" }], [])));
    expect(retry).toMatchObject({ duplicate: true, outcome: { ok: true, result: { succeeded: true, results: [1] } } });
    expect(machine.tests).toBe(tests);
    expect(host.query("x")).toBe(1);
  });
});

// ---------------------------------------------------------------- snapshots

describe("StateMachineHost: snapshot handles", () => {
  const prefix = (): ChosenEntry[] => [
    batch(0, 100, open("s"), open("t")),
    batch(1, 200, incr("s", 1), incr("t", 1, "y")),
    noop(2),
    batch(3, 300, incr("s", 2)),
  ];
  const suffix = (): ChosenEntry[] => [batch(4, 400, incr("s", 3)), batch(5, 1350, incr("s", 4))];

  it("captures state and session table at the applied slot while applying goes on", async () => {
    const { host } = newHost(1000);
    feed(host, prefix());
    const digestAtHandle = host.digest();
    const { handle, write } = host.beginSnapshot();
    expect(handle.slot).toBe(3);
    expect(handle.time).toBe(300);
    expect(handle.configs).toEqual([{ id: -1, voters: VOTERS, learners: [] }]);
    expect([...handle.sessions].sort((a, b) => (a.session < b.session ? -1 : 1))).toEqual([
      { session: "s", lastSeq: 2, lastOutcome: { ok: true, result: 2 }, lastActive: 300 },
      { session: "t", lastSeq: 1, lastOutcome: { ok: true, result: 1 }, lastActive: 200 },
    ]);

    // Applying goes on before the snapshot is serialized...
    const pending = write();
    feed(host, suffix());
    expect(host.query("x")).toBe(4);
    expect(host.hasSession("t")).toBe(false); // expired at slot 5 (idle since 200, time 1350)
    const snapshot = await pending;
    // ...and neither the handle nor the data moved with it.
    expect(snapshot.handle).toBe(handle);
    expect(handle.sessions.find((record) => record.session === "s")?.lastSeq).toBe(2);
    expect(handle.sessions.some((record) => record.session === "t")).toBe(true);
    expect(JSON.parse(new TextDecoder().decode(snapshot.data))).toEqual([
      ["x", 2],
      ["y", 1],
    ]);

    const fresh = newHost(1000);
    fresh.host.restore(snapshot);
    expect(fresh.machine.restoredFrom).toBe(snapshot.data);
    expect(fresh.host.digest()).toBe(digestAtHandle);
    expect(fresh.host.appliedThrough).toBe(3);
    expect(fresh.host.time).toBe(300);
    expect(fresh.host.cachedOutcome("s", 2)).toEqual({ ok: true, result: 2 });
    expect(fresh.host.cachedOutcome("t", 1)).toEqual({ ok: true, result: 1 });
  });

  it("a restored host gives the same outcomes and the same digest as the original on the same suffix", async () => {
    const original = newHost(1000);
    feed(original.host, prefix());
    const snapshot = await original.host.beginSnapshot().write();
    const restored = newHost(1000);
    restored.host.restore(snapshot);

    const tail = [...suffix(), batch(6, 1400, incr("s", 4), incr("s", 3), incr("t", 3))];
    const outcomes = (h: typeof original.host) => tail.map((entry) => h.apply(entry).map((a) => [a.slot, a.duplicate, a.outcome]));
    const fromOriginal = outcomes(original.host);
    const fromRestored = outcomes(restored.host);
    expect(fromRestored).toEqual(fromOriginal);
    expect(restored.host.digest()).toBe(original.host.digest());
    // The suffix really exercised the restored session table: a duplicate, a stale request, an expired session.
    const last = fromOriginal[fromOriginal.length - 1] ?? [];
    expect(last.map(([, duplicate]) => duplicate)).toEqual([true, true, false]);
    expect(last[2]?.[2]).toMatchObject({ ok: false, error: { code: "SESSION_EXPIRED" } });
    // The restored machine applied only the suffix.
    expect(restored.machine.applies).toBe(2);
  });

  it("digests differ when states differ", () => {
    const a = newHost();
    const b = newHost();
    feed(a.host, [batch(0, 10, open("s")), batch(1, 20, incr("s", 1))]);
    feed(b.host, [batch(0, 10, open("s")), batch(1, 20, incr("s", 1, "other"))]);
    expect(a.host.digest()).not.toBe(b.host.digest());
    const c = newHost();
    feed(c.host, [batch(0, 10, open("s")), batch(1, 20, open("s2"))]);
    const d = newHost();
    feed(d.host, [batch(0, 10, open("s")), batch(1, 20, open("s3"))]);
    expect(c.host.digest()).not.toBe(d.host.digest());
  });

  it("continues from the slot after the snapshot's and refuses the snapshot's own slot", async () => {
    const original = newHost();
    feed(original.host, prefix());
    const snapshot = await original.host.beginSnapshot().write();
    const restored = newHost();
    restored.host.restore(snapshot);
    expect(() => restored.host.apply(batch(3, 300, incr("s", 2)))).toThrow(InvariantError);
    expect(restored.host.apply(batch(4, 400, incr("s", 3)))[0]?.outcome).toEqual({ ok: true, result: 3 });
  });
});

// ---------------------------------------------------------------- slot order

describe("StateMachineHost: slot order", () => {
  it("throws InvariantError on a gap, a repeat, or a start other than slot 0", () => {
    const { host, machine } = newHost();
    expect(() => host.apply(batch(1, 10, open("s")))).toThrow(InvariantError);
    expect(host.appliedThrough).toBe(-1);
    host.apply(batch(0, 10, open("s")));
    expect(() => host.apply(batch(0, 10, incr("s", 1)))).toThrow(InvariantError);
    expect(() => host.apply(batch(2, 20, incr("s", 1)))).toThrow(/applying slot 2 after 0/);
    expect(() => host.apply(noop(5))).toThrow(InvariantError);
    expect(machine.applies).toBe(0);
    expect(host.appliedThrough).toBe(0);
    host.apply(noop(1));
    host.apply(batch(2, 20, incr("s", 1)));
    expect(host.appliedThrough).toBe(2);
    expect(machine.applies).toBe(1);
  });

  it("rejects a non-positive TTL", () => {
    expect(() => new StateMachineHost(new CounterMachine(), { sessionTtlMs: 0, voters: VOTERS })).toThrow(InvariantError);
  });
});

describe("StateMachineHost: epochs (Paxos Made Live §5.3)", () => {
  const at = (round: number, node: string) => ({ round, node });
  const epochBatch = (slot: number, epoch: { round: number; node: string }, ...commands: Command[]): ChosenEntry => ({ slot, value: { type: "batch", time: slot, commands, epoch } });

  it("tells each command the epoch it was accepted under", () => {
    const { host, machine } = newHost();
    feed(host, [epochBatch(0, at(1, "a"), open("s")), epochBatch(1, at(1, "a"), incr("s", 1)), epochBatch(2, at(3, "b"), incr("s", 2))]);
    expect(machine.contexts.map((context) => context.epoch)).toEqual([at(1, "a"), at(3, "b")]);
  });

  it("a batch of an older epoch, chosen after a newer one's, is refused, not applied: EPOCH_CHANGED, session untouched, and the retry applies once", () => {
    const { host, machine } = newHost();
    feed(host, [epochBatch(0, at(1, "a"), open("s"), open("t")), epochBatch(1, at(2, "b"), incr("t", 1))]);
    // A leader of epoch 1 accepted s's first increment; a later leader found it and chose it after epoch 2's batches.
    const stale = host.apply(epochBatch(2, at(1, "a"), incr("s", 1)));
    expect(stale.map((applied) => applied.outcome)).toEqual([{ ok: false, error: { code: "EPOCH_CHANGED", message: expect.any(String) } }]);
    expect(host.query("x")).toBe(1);
    expect(host.cachedOutcome("s", 1)).toBeUndefined();
    // The client retries the same command; it applies once, in the current epoch.
    const retried = host.apply(epochBatch(3, at(2, "b"), incr("s", 1)));
    expect(retried.map((applied) => applied.outcome)).toEqual([{ ok: true, result: 2 }]);
    expect(machine.applies).toBe(2);
    expect(host.apply(epochBatch(4, at(2, "b"), incr("s", 1)))[0]?.duplicate).toBe(true);
  });

  it("the newest epoch travels in the snapshot handle, so a restored replica refuses the same stale batches", async () => {
    const { host } = newHost();
    feed(host, [epochBatch(0, at(1, "a"), open("s")), epochBatch(1, at(4, "c"), incr("s", 1))]);
    const snapshot = await host.beginSnapshot().write();
    expect(snapshot.handle.epoch).toEqual(at(4, "c"));
    const { host: restored } = newHost();
    restored.restore(snapshot);
    expect(restored.apply(epochBatch(2, at(2, "a"), incr("s", 2)))[0]?.outcome).toMatchObject({ ok: false, error: { code: "EPOCH_CHANGED" } });
    expect(host.apply(epochBatch(2, at(2, "a"), incr("s", 2)))[0]?.outcome).toMatchObject({ ok: false, error: { code: "EPOCH_CHANGED" } });
    expect(restored.digest()).toBe(host.digest());
  });
});
