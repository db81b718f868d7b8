import { describe, expect, expectTypeOf, it } from "vitest";
import {
  type Ballot,
  type Command,
  InvalidInputError,
  type Message,
  type MessageFromSchema,
  type MessageType,
  type SlotRecord,
  type Value,
  type ValueFromSchema,
  parseCommand,
  parseMessage,
  parseSlotRecord,
} from "../src/index.js";

const ballot: Ballot = { round: 3, node: "a" };
const higher: Ballot = { round: 4, node: "b" };
const command: Command = { session: "client-1", seq: 7, body: { type: "op", op: { put: ["k", 1] } } };
const batch: Value = {
  type: "batch",
  time: 1234.5,
  commands: [
    command,
    { session: "client-2", seq: 0, body: { type: "open-session" } },
    { session: "client-2", seq: 9, body: { type: "close-session" } },
    { session: "client-3", seq: 1, body: { type: "multi", guard: [{ eq: 1 }], top: ["a", 2], fop: [] } },
  ],
};
const record: SlotRecord = { slot: 4, ballot, value: batch, chosen: false };

/** One valid message of every type; the `Record` makes the compiler insist on all of them. */
const VALID: { [K in MessageType]: Extract<Message, { type: K }> } = {
  "pre-vote": { type: "pre-vote", from: "a", to: "b", ballot },
  "pre-vote-reply": { type: "pre-vote-reply", from: "b", to: "a", ballot, granted: true },
  prepare: { type: "prepare", from: "a", to: "b", ballot, fromSlot: 0 },
  promise: {
    type: "promise",
    from: "b",
    to: "a",
    ballot,
    fromSlot: 2,
    nextSlot: 6,
    entries: [record, { slot: 5, ballot: higher, value: { type: "noop" }, chosen: true }],
    noMoreAccepted: true,
    logStart: 1,
    firstUnchosen: 3,
  },
  accept: { type: "accept", from: "a", to: "b", ballot, entries: [{ slot: 4, value: batch }, { slot: 5, value: { type: "noop" } }, { slot: 6, value: { type: "check" } }], firstUnchosen: 4 },
  accepted: { type: "accepted", from: "b", to: "a", ballot, slots: [4, 5], firstUnchosen: 4 },
  reject: { type: "reject", from: "b", to: "a", ballot, promised: higher, reason: "leader-alive" },
  success: { type: "success", from: "a", to: "c", ballot, entries: [{ slot: 0, value: batch }], firstUnchosen: 1 },
  heartbeat: { type: "heartbeat", from: "a", to: "b", ballot, firstUnchosen: 6, round: 12, logTime: 1_700_000_000_000 },
  "heartbeat-reply": { type: "heartbeat-reply", from: "b", to: "a", ballot, round: 12, firstUnchosen: 6 },
  "take-over": { type: "take-over", from: "a", to: "b", ballot },
  "need-snapshot": { type: "need-snapshot", from: "a", to: "d", ballot, logStart: 40 },
  "snapshot-request": { type: "snapshot-request", from: "d", to: "b", minSlot: 39, length: 65536 },
  "snapshot-chunk": { type: "snapshot-chunk", from: "b", to: "d", available: true, slot: 41, checksum: 0xdeadbeef, size: 100000, offset: 65536, data: "AQID", crc: 12345 },
  digest: { type: "digest", from: "a", to: "b", slot: 9, digest: "3f2a9c01" },
};

/** As a peer's bytes would arrive: plain JSON, no shared references. */
const wire = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

/** Runs `parse` and returns the `InvalidInputError` it throws (failing the test if it does not throw one). */
function invalid(input: unknown, parse: (input: unknown) => unknown = parseMessage): InvalidInputError {
  try {
    parse(input);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    return error as InvalidInputError;
  }
  throw new Error(`accepted invalid input ${JSON.stringify(input)}`);
}

describe("parseMessage: valid messages", () => {
  it.each(Object.values(VALID).map((message) => [message.type, message] as const))("accepts a %s message unchanged", (_type, message) => {
    const parsed = parseMessage(wire(message));
    expect(parsed).toEqual(message);
    expect(parsed.type).toBe(message.type);
  });

  it("covers every message type", () => {
    expect(Object.keys(VALID).sort()).toEqual(
      ["accept", "accepted", "heartbeat", "heartbeat-reply", "pre-vote", "pre-vote-reply", "prepare", "promise", "reject", "success", "take-over", "need-snapshot", "snapshot-request", "snapshot-chunk", "digest"].sort(),
    );
  });

  it("accepts the boundaries: slot 0, empty lists, MAX_SAFE_INTEGER slots", () => {
    expect(parseMessage({ ...VALID.accepted, slots: [], firstUnchosen: 0 })).toMatchObject({ slots: [], firstUnchosen: 0 });
    expect(parseMessage({ ...VALID.prepare, fromSlot: Number.MAX_SAFE_INTEGER })).toMatchObject({ fromSlot: Number.MAX_SAFE_INTEGER });
    expect(parseMessage({ ...VALID.promise, entries: [] })).toMatchObject({ entries: [] });
  });
});

describe("parseMessage: malformed messages", () => {
  it("says which field is missing", () => {
    const { fromSlot: _omitted, ...withoutFromSlot } = VALID.prepare;
    const error = invalid(withoutFromSlot);
    expect(error.code).toBe("INVALID_INPUT");
    expect(error.retryable).toBe(false);
    expect(error.where).toBe("message");
    expect(error.message).toMatch(/^invalid message: /);
    expect(error.message).toContain("fromSlot");
    expect(error.message).toMatch(/expected number, received undefined/);
  });

  it("takes optional fields when present and refuses them malformed", () => {
    const resumed = { ...VALID["snapshot-request"], resume: { slot: 41, checksum: 0xdeadbeef, offset: 65536 } };
    expect(parseMessage(wire(resumed))).toEqual(resumed);
    expect(invalid({ ...resumed, resume: { slot: 41, checksum: 2 ** 32, offset: 0 } }).reason).toContain("resume.checksum");
    expect(parseMessage(wire({ ...VALID.prepare, transfer: true }))).toEqual({ ...VALID.prepare, transfer: true });
    expect(invalid({ ...VALID["snapshot-chunk"], data: "not base64!" }).reason).toContain("data");
    const horizon = { ...VALID.heartbeat, horizon: { probe: 0xfffffffe, slot: 7 } };
    expect(parseMessage(wire(horizon))).toEqual(horizon);
    expect(invalid({ ...horizon, horizon: { probe: -1, slot: 7 } }).reason).toContain("horizon.probe");
    const rebuilding = { ...VALID["heartbeat-reply"], rebuilding: 0xfffffffe };
    expect(parseMessage(wire(rebuilding))).toEqual(rebuilding);
    expect(invalid({ ...rebuilding, rebuilding: "yes" }).reason).toContain("rebuilding");
  });

  it.each(Object.values(VALID).flatMap((message) => Object.keys(message).map((key) => [message.type, key] as const)))(
    "rejects a %s message without %s, naming the field",
    (type, key) => {
      const copy = wire(VALID[type]) as Record<string, unknown>;
      delete copy[key];
      const error = invalid(copy);
      // A missing `type` is reported as a bad discriminator at `type`.
      expect(error.reason).toContain(`at ${key}`);
    },
  );

  it("says which field has the wrong type", () => {
    const granted = invalid({ ...VALID["pre-vote-reply"], granted: "yes" });
    expect(granted.message).toContain("granted");
    expect(granted.message).toMatch(/expected boolean, received string/);

    const round = invalid({ ...VALID.heartbeat, ballot: { round: "1", node: "a" } });
    expect(round.message).toContain("ballot.round");
    expect(round.message).toMatch(/expected number, received string/);

    const entries = invalid({ ...VALID.accept, entries: { slot: 1 } });
    expect(entries.message).toContain("entries");
    expect(entries.message).toMatch(/expected array/);
  });

  it("rejects negative and fractional slots, wherever they are", () => {
    const cases: [unknown, string][] = [
      [{ ...VALID.prepare, fromSlot: -1 }, "fromSlot"],
      [{ ...VALID.accepted, slots: [3, -2] }, "slots[1]"],
      [{ ...VALID.heartbeat, firstUnchosen: -5 }, "firstUnchosen"],
      [{ ...VALID.accept, entries: [{ slot: -1, value: { type: "noop" } }] }, "entries[0].slot"],
      [{ ...VALID.promise, entries: [{ ...record, slot: -4 }] }, "entries[0].slot"],
      [{ ...VALID.success, entries: [{ slot: -1, value: { type: "noop" } }] }, "entries[0].slot"],
      [{ ...VALID["pre-vote"], ballot: { round: -1, node: "a" } }, "ballot.round"],
    ];
    for (const [input, path] of cases) {
      const error = invalid(input);
      expect(error.message, JSON.stringify(input)).toContain(path);
      expect(error.message, JSON.stringify(input)).toMatch(/>=0/);
    }
    const fractional = invalid({ ...VALID.prepare, fromSlot: 1.5 });
    expect(fractional.message).toContain("fromSlot");
    expect(fractional.message).toMatch(/expected int/);
    const unsafe = invalid({ ...VALID.prepare, fromSlot: Number.MAX_SAFE_INTEGER + 2 });
    expect(unsafe.message).toContain("fromSlot");
  });

  it("rejects an unknown message type, listing the known ones", () => {
    const error = invalid({ ...VALID.prepare, type: "prepare-all" });
    expect(error.message).toContain("at type");
    expect(error.message).toContain("'prepare'");
    expect(error.message).toContain("'heartbeat-reply'");
  });

  it("rejects what is not a message at all", () => {
    for (const input of [null, undefined, 42, "prepare", [VALID.prepare], {}]) invalid(input);
  });

  it("rejects bad envelopes, ballots, enums and nested values", () => {
    expect(invalid({ ...VALID.prepare, from: "" }).message).toContain("from");
    expect(invalid({ ...VALID.prepare, to: "x".repeat(257) }).message).toContain("to");
    expect(invalid({ ...VALID.reject, reason: "bored" }).message).toContain("reason");
    expect(invalid({ ...VALID.accept, entries: [{ slot: 1, value: { type: "batch", time: 1 } }] }).message).toContain("entries[0].value.commands");
    expect(invalid({ ...VALID.accept, entries: [{ slot: 1, value: { type: "other" } }] }).message).toContain("entries[0].value.type");
    expect(invalid({ ...VALID.accept, entries: [{ slot: 1, value: { type: "batch", time: Number.POSITIVE_INFINITY, commands: [] } }] }).message).toContain(
      "entries[0].value.time",
    );
    const badCommand = { ...command, seq: -1 };
    expect(invalid({ ...VALID.success, entries: [{ slot: 0, value: { type: "batch", time: 1, commands: [badCommand] } }] }).message).toContain(
      "entries[0].value.commands[0].seq",
    );
    const badBody = { ...command, body: { type: "multi", guard: [], top: [] } };
    expect(invalid({ ...VALID.success, entries: [{ slot: 0, value: { type: "batch", time: 1, commands: [badBody] } }] }).message).toContain(
      "entries[0].value.commands[0].body.fop",
    );
    expect(invalid({ ...VALID.promise, entries: [{ slot: 1, ballot, value: { type: "noop" } }] }).message).toContain("entries[0].chosen");
  });
});

describe("parseSlotRecord and parseCommand", () => {
  it("accept valid input and reject malformed input with InvalidInputError", () => {
    expect(parseSlotRecord(wire(record))).toEqual(record);
    expect(parseCommand(wire(command))).toEqual(command);
    const slotError = invalid({ ...record, slot: -1 }, parseSlotRecord);
    expect(slotError.where).toBe("slot record");
    expect(slotError.message).toContain("slot");
    const commandError = invalid({ ...command, session: "" }, parseCommand);
    expect(commandError.where).toBe("command");
    expect(commandError.message).toContain("session");
    expect(invalid({ ...command, body: { type: "op" }, seq: 1.5 }, parseCommand).message).toContain("seq");
  });
});

// ---------------------------------------------------------------- type tests

/**
 * True when each type is assignable to the other. Zod infers mutable
 * properties where `messages.ts` declares `readonly` ones (arrays are readonly
 * on both sides, through `.readonly()`), so the types are not *identical* and
 * `toEqualTypeOf` would fail on readonly modifiers alone; mutual assignability
 * is the right comparison, backed up below by an exact comparison of the two
 * with `readonly` stripped deeply.
 */
type MutuallyAssignable<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

/** Removes `readonly` from properties and arrays, all the way down. */
type DeepMutable<T> = T extends readonly (infer Item)[]
  ? DeepMutable<Item>[]
  : T extends object
    ? { -readonly [K in keyof T]: DeepMutable<T[K]> }
    : T;

describe("schema and TypeScript types agree (compile-time, checked by tsc -p tsconfig.test.json)", () => {
  it("Message and MessageFromSchema are mutually assignable", () => {
    expectTypeOf<MessageFromSchema>().toExtend<Message>();
    expectTypeOf<Message>().toExtend<MessageFromSchema>();
    expectTypeOf<MutuallyAssignable<Message, MessageFromSchema>>().toEqualTypeOf<true>();
    expectTypeOf<DeepMutable<MessageFromSchema>>().toEqualTypeOf<DeepMutable<Message>>();
  });

  it("each message variant matches its schema variant", () => {
    expectTypeOf<MessageFromSchema["type"]>().toEqualTypeOf<MessageType>();
    expectTypeOf<MutuallyAssignable<Extract<Message, { type: "promise" }>, Extract<MessageFromSchema, { type: "promise" }>>>().toEqualTypeOf<true>();
    expectTypeOf<MutuallyAssignable<Extract<Message, { type: "accept" }>, Extract<MessageFromSchema, { type: "accept" }>>>().toEqualTypeOf<true>();
    expectTypeOf<MutuallyAssignable<Extract<Message, { type: "reject" }>, Extract<MessageFromSchema, { type: "reject" }>>>().toEqualTypeOf<true>();
    expectTypeOf<MutuallyAssignable<Extract<Message, { type: "success" }>, Extract<MessageFromSchema, { type: "success" }>>>().toEqualTypeOf<true>();
  });

  it("Value and ValueFromSchema are mutually assignable", () => {
    expectTypeOf<ValueFromSchema>().toExtend<Value>();
    expectTypeOf<Value>().toExtend<ValueFromSchema>();
    expectTypeOf<MutuallyAssignable<Value, ValueFromSchema>>().toEqualTypeOf<true>();
    expectTypeOf<DeepMutable<ValueFromSchema>>().toEqualTypeOf<DeepMutable<Value>>();
  });

  it("the helper can fail: a type with an extra required field, or a missing variant, is not mutually assignable", () => {
    expectTypeOf<MutuallyAssignable<Message, Message & { extra: number }>>().toEqualTypeOf<false>();
    expectTypeOf<MutuallyAssignable<Message, Exclude<Message, { type: "success" }>>>().toEqualTypeOf<false>();
    expectTypeOf<MutuallyAssignable<Value, { type: "batch"; time: number; commands: Command[] }>>().toEqualTypeOf<false>();
  });

  it("parseMessage returns a Message", () => {
    expectTypeOf(parseMessage).returns.toEqualTypeOf<Message>();
  });
});
