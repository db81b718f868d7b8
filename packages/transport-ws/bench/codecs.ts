/**
 * Sketches of alternative peer codecs, for the benchmarks only (nothing in
 * src/ uses them):
 *
 * - `encodeBinary`/`decodeBinary`: a compact binary codec for the hot
 *   messages (heartbeat, heartbeat-reply, accepted, accept, success) that
 *   validates while it decodes, with the rules of `messageSchema`.
 *   Application ops are `unknown` to Synod, so they travel as JSON text
 *   inside it. Other message types would stay JSON + zod.
 * - `validateByHand`: the same rules checked by hand on a JSON-parsed frame,
 *   to separate JSON's cost from zod's.
 */
import type { Command, CommandBody, Message, Value } from "@synod/core";
import { peerMessageFrame } from "../src/index.js";

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const TAG = { heartbeat: 1, "heartbeat-reply": 2, accept: 3, accepted: 4, success: 5 } as const;
const BODY = { "open-session": 0, "close-session": 1, op: 2, multi: 3 } as const;

class Writer {
  buffer = Buffer.allocUnsafe(64 * 1024);
  offset = 0;
  opBytes: OpBytes | undefined;
  reset(): void {
    this.offset = 0;
  }
  private ensure(bytes: number): void {
    if (this.offset + bytes <= this.buffer.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.offset + bytes));
    this.buffer.copy(bigger, 0, 0, this.offset);
    this.buffer = bigger;
  }
  u8(value: number): void {
    this.ensure(1);
    this.buffer[this.offset++] = value;
  }
  u32(value: number): void {
    this.ensure(4);
    this.buffer.writeUInt32LE(value, this.offset);
    this.offset += 4;
  }
  /** Safe integers and finite times as float64: exact, and one write. */
  f64(value: number): void {
    this.ensure(8);
    this.buffer.writeDoubleLE(value, this.offset);
    this.offset += 8;
  }
  /** u32 byte length + UTF-8. */
  str(value: string): void {
    this.ensure(4 + value.length * 3);
    const written = this.buffer.write(value, this.offset + 4, "utf8");
    this.buffer.writeUInt32LE(written, this.offset);
    this.offset += 4 + written;
  }
  /** u32 byte length + bytes already encoded. */
  raw(bytes: Buffer): void {
    this.ensure(4 + bytes.length);
    this.buffer.writeUInt32LE(bytes.length, this.offset);
    bytes.copy(this.buffer, this.offset + 4);
    this.offset += 4 + bytes.length;
  }
  /** A copy the socket can keep. */
  bytes(): Buffer {
    const out = Buffer.allocUnsafe(this.offset);
    this.buffer.copy(out, 0, 0, this.offset);
    return out;
  }
}

const writer = new Writer();

/**
 * Encoded ops kept by the op object, modelling a design where the leader keeps
 * the bytes the client sent for each op and never re-encodes them (per
 * follower, per retransmission). Off unless `encodeBinary` is given it.
 */
export type OpBytes = WeakMap<object, Buffer>;

/** Encodes the hot messages; returns undefined for the others (they would stay JSON + zod). */
export function encodeBinary(message: Message, opBytes?: OpBytes): Buffer | undefined {
  const w = writer;
  w.opBytes = opBytes;
  w.reset();
  w.u8(1);
  switch (message.type) {
    case "heartbeat":
    case "heartbeat-reply":
      w.u8(TAG[message.type]);
      envelope(w, message);
      w.f64(message.firstUnchosen);
      w.f64(message.round);
      if (message.type === "heartbeat") w.f64(message.logTime);
      break;
    case "accepted":
      w.u8(TAG.accepted);
      envelope(w, message);
      w.f64(message.firstUnchosen);
      w.u32(message.slots.length);
      for (const slot of message.slots) w.f64(slot);
      break;
    case "accept":
    case "success":
      w.u8(TAG[message.type]);
      envelope(w, message);
      w.f64(message.firstUnchosen);
      w.u32(message.entries.length);
      for (const entry of message.entries) {
        w.f64(entry.slot);
        encodeValue(w, entry.value);
      }
      break;
    default:
      return undefined;
  }
  return w.bytes();
}

function envelope(w: Writer, message: { from: string; to: string; ballot: { round: number; node: string } }): void {
  w.str(message.from);
  w.str(message.to);
  w.f64(message.ballot.round);
  w.str(message.ballot.node);
}

function encodeValue(w: Writer, value: Value): void {
  if (value.type === "noop") return w.u8(0);
  if (value.type === "check") return w.u8(2);
  if (value.type === "config") throw new RangeError("the binary codec sketch does not encode configuration changes");
  w.u8(1);
  w.f64(value.time);
  w.u32(value.commands.length);
  for (const command of value.commands) {
    w.str(command.session);
    w.f64(command.seq);
    const body = command.body;
    w.u8(BODY[body.type]);
    if (body.type === "op") {
      const cached = typeof body.op === "object" && body.op !== null ? w.opBytes?.get(body.op) : undefined;
      if (cached !== undefined) w.raw(cached);
      else w.str(JSON.stringify(body.op) ?? "null");
    }
    else if (body.type === "multi") w.str(JSON.stringify([body.guard, body.top, body.fop]));
  }
}

class DecodeError extends Error {}

class Reader {
  offset = 0;
  constructor(private readonly buffer: Buffer) {}
  private need(bytes: number): void {
    if (this.offset + bytes > this.buffer.length) throw new DecodeError("truncated frame");
  }
  u8(): number {
    this.need(1);
    return this.buffer[this.offset++] as number;
  }
  u32(): number {
    this.need(4);
    const value = this.buffer.readUInt32LE(this.offset);
    this.offset += 4;
    return value;
  }
  f64(): number {
    this.need(8);
    const value = this.buffer.readDoubleLE(this.offset);
    this.offset += 8;
    return value;
  }
  /** A slot-like integer: 0 ≤ n ≤ MAX_SAFE_INTEGER, as the zod `slot` schema. */
  natural(): number {
    const value = this.f64();
    if (!Number.isInteger(value) || value < 0 || value > MAX_SAFE) throw new DecodeError("not a natural number");
    return value;
  }
  str(min: number, max: number): string {
    const bytes = this.u32();
    this.need(bytes);
    const value = this.buffer.toString("utf8", this.offset, this.offset + bytes);
    this.offset += bytes;
    if (value.length < min || value.length > max) throw new DecodeError("string length out of range");
    return value;
  }
  /** Counts bound by the bytes left, so a forged count cannot make us allocate. */
  count(minBytesEach: number): number {
    const count = this.u32();
    if (count * minBytesEach > this.buffer.length - this.offset) throw new DecodeError("count larger than the frame");
    return count;
  }
  end(): void {
    if (this.offset !== this.buffer.length) throw new DecodeError("trailing bytes");
  }
}

/** Decodes and validates (same rules as `messageSchema` for these types); undefined for a bad frame. */
export function decodeBinary(buffer: Buffer): Message | undefined {
  try {
    const r = new Reader(buffer);
    if (r.u8() !== 1) return undefined;
    const tag = r.u8();
    const from = r.str(1, 256);
    const to = r.str(1, 256);
    const ballot = { round: r.natural(), node: r.str(0, 256) };
    let message: Message;
    switch (tag) {
      case TAG.heartbeat:
        message = { type: "heartbeat", from, to, ballot, firstUnchosen: r.natural(), round: r.natural(), logTime: r.natural() };
        break;
      case TAG["heartbeat-reply"]:
        message = { type: "heartbeat-reply", from, to, ballot, firstUnchosen: r.natural(), round: r.natural() };
        break;
      case TAG.accepted: {
        const firstUnchosen = r.natural();
        const slots: number[] = new Array(r.count(8));
        for (let index = 0; index < slots.length; index += 1) slots[index] = r.natural();
        message = { type: "accepted", from, to, ballot, slots, firstUnchosen };
        break;
      }
      case TAG.accept:
      case TAG.success: {
        const firstUnchosen = r.natural();
        const entries: { slot: number; value: Value }[] = new Array(r.count(9));
        for (let index = 0; index < entries.length; index += 1) entries[index] = { slot: r.natural(), value: decodeValue(r) };
        message = { type: tag === TAG.accept ? "accept" : "success", from, to, ballot, entries, firstUnchosen };
        break;
      }
      default:
        return undefined;
    }
    r.end();
    return message;
  } catch (error) {
    if (error instanceof DecodeError || error instanceof SyntaxError || error instanceof RangeError) return undefined;
    throw error;
  }
}

function decodeValue(r: Reader): Value {
  const kind = r.u8();
  if (kind === 0) return { type: "noop" };
  if (kind === 2) return { type: "check" };
  if (kind !== 1) throw new DecodeError("unknown value");
  const time = r.f64();
  if (!Number.isFinite(time)) throw new DecodeError("time is not finite");
  const commands: Command[] = new Array(r.count(13));
  for (let index = 0; index < commands.length; index += 1) {
    const session = r.str(1, 256);
    const seq = r.natural();
    const kindOfBody = r.u8();
    let body: CommandBody;
    if (kindOfBody === BODY.op) body = { type: "op", op: JSON.parse(r.str(0, Number.MAX_SAFE_INTEGER)) as unknown };
    else if (kindOfBody === BODY["open-session"]) body = { type: "open-session" };
    else if (kindOfBody === BODY["close-session"]) body = { type: "close-session" };
    else if (kindOfBody === BODY.multi) {
      const parts: unknown = JSON.parse(r.str(0, Number.MAX_SAFE_INTEGER));
      if (!Array.isArray(parts) || parts.length !== 3 || !parts.every(Array.isArray)) throw new DecodeError("bad multi");
      body = { type: "multi", guard: parts[0] as unknown[], top: parts[1] as unknown[], fop: parts[2] as unknown[] };
    } else throw new DecodeError("unknown command body");
    commands[index] = { session, seq, body };
  }
  return { type: "batch", time, commands };
}

// ---------------------------------------------------------------- JSON with a hand-written validator (sketch)

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);
const isNatural = (value: unknown): boolean => typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= MAX_SAFE;
const isString = (value: unknown, min: number, max: number): boolean => typeof value === "string" && value.length >= min && value.length <= max;
const isBallot = (value: unknown): boolean => isObject(value) && isNatural(value.round) && isString(value.node, 0, 256);

function isValue(value: unknown): boolean {
  if (!isObject(value)) return false;
  if (value.type === "noop") return true;
  if (value.type !== "batch" || typeof value.time !== "number" || !Number.isFinite(value.time) || !Array.isArray(value.commands)) return false;
  for (const command of value.commands as unknown[]) {
    if (!isObject(command) || !isString(command.session, 1, 256) || !isNatural(command.seq) || !isObject(command.body)) return false;
    const body = command.body;
    switch (body.type) {
      case "open-session":
      case "close-session":
      case "op":
        break;
      case "multi":
        if (!Array.isArray(body.guard) || !Array.isArray(body.top) || !Array.isArray(body.fop)) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

/**
 * The hot messages checked by hand with `messageSchema`'s rules; undefined for a
 * bad frame. Unlike zod it returns the parsed object itself (no stripping of
 * unknown keys), so a receiver must not rely on the absence of extra fields.
 */
export function validateByHand(frame: unknown): Message | undefined {
  if (!isObject(frame) || frame.v !== 1 || frame.t !== "msg" || !isObject(frame.m)) return undefined;
  const m = frame.m;
  if (!isString(m.from, 1, 256) || !isString(m.to, 1, 256) || !isBallot(m.ballot)) return undefined;
  switch (m.type) {
    case "heartbeat":
    case "heartbeat-reply":
      if (m.type === "heartbeat" && !(typeof m.logTime === "number" && Number.isFinite(m.logTime))) return undefined;
      return isNatural(m.firstUnchosen) && isNatural(m.round) ? (m as unknown as Message) : undefined;
    case "accepted":
      return isNatural(m.firstUnchosen) && Array.isArray(m.slots) && (m.slots as unknown[]).every(isNatural) ? (m as unknown as Message) : undefined;
    case "accept":
    case "success":
      if (!isNatural(m.firstUnchosen) || !Array.isArray(m.entries)) return undefined;
      for (const entry of m.entries as unknown[]) if (!isObject(entry) || !isNatural(entry.slot) || !isValue(entry.value)) return undefined;
      return m as unknown as Message;
    default: {
      const result = peerMessageFrame.safeParse(frame);
      return result.success ? (result.data.m as Message) : undefined;
    }
  }
}


/**
 * A cheaper equivalent of the nesting-depth check (true when an array or
 * object sits at depth ≥ `limit`, the root being depth 0): plain recursion,
 * bounded by `limit` so it cannot exhaust the stack, and no allocation per
 * node.
 */
export function deeperThan(value: unknown, limit: number): boolean {
  if (value === null || typeof value !== "object") return false;
  if (limit <= 0) return true;
  if (Array.isArray(value)) {
    for (const child of value as unknown[]) if (child !== null && typeof child === "object" && deeperThan(child, limit - 1)) return true;
    return false;
  }
  for (const key in value) {
    const child = (value as Record<string, unknown>)[key];
    if (child !== null && typeof child === "object" && deeperThan(child, limit - 1)) return true;
  }
  return false;
}
