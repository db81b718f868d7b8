/** Shared pieces of the transport-ws benchmarks: the two messages measured, latency samples, medians, argument parsing, and the A/B switches. */
import type { Command, Message } from "@synod/core";
import * as ws from "ws";
import { Samples, median } from "@synod/testkit";

/** The bench process's node id (it dials the child) and the child's. */
export const BENCH_NODE = "replica-a";
export const CHILD_NODE = "replica-b";
export const CLUSTER_ID = "bench-cluster";

export type Size = "small" | "4k";
export const SIZES: readonly Size[] = ["small", "4k"];

const BALLOT = Object.freeze({ round: 42, node: BENCH_NODE });

/** A heartbeat with `id` as its round: the frame `{v,t,m}` is ~140 B of JSON. */
export function heartbeat(id: number, from = BENCH_NODE, to = CHILD_NODE): Message {
  return { type: "heartbeat", from, to, ballot: BALLOT, firstUnchosen: 1_234_567, round: id, logTime: 1_700_000_000_000 + id };
}

/** Application operations of the 4 KiB accept: 16 puts of 256 B of JSON each (4 096 B of ops). */
const OP_COUNT = 16;
const OP_JSON_BYTES = 256;
function makeCommands(): readonly Command[] {
  const commands: Command[] = [];
  for (let index = 0; index < OP_COUNT; index += 1) {
    const key = `user:${String(100_000 + index * 7919)}`;
    // {"op":"put","key":"user:NNNNNN","value":"xxx..."}: pad the value so the op's JSON is exactly OP_JSON_BYTES.
    const skeleton = JSON.stringify({ op: "put", key, value: "" }).length;
    const op = { op: "put", key, value: "v".repeat(OP_JSON_BYTES - skeleton) };
    commands.push({ session: `c0ffee${String(index).padStart(26, "0")}`, seq: 1_000 + index, body: { type: "op", op } });
  }
  return commands;
}
const COMMANDS = Object.freeze(makeCommands());

/** An accept of one batch of 16 commands whose ops total 4 KiB of JSON; `id` is its slot and firstUnchosen. */
export function accept(id: number, from = BENCH_NODE, to = CHILD_NODE): Message {
  return {
    type: "accept",
    from,
    to,
    ballot: BALLOT,
    entries: [{ slot: id, value: { type: "batch", time: 1_763_800_000_000, commands: COMMANDS } }],
    firstUnchosen: id,
  };
}

export function messageFor(size: Size, id: number, from?: string, to?: string): Message {
  return size === "small" ? heartbeat(id, from, to) : accept(id, from, to);
}

/** The id a message of the bench carries (heartbeat round, accept firstUnchosen); -1 for others. */
export function idOf(message: unknown): number {
  const m = message as { type?: unknown; round?: unknown; firstUnchosen?: unknown };
  if (m.type === "heartbeat" && typeof m.round === "number") return m.round;
  if (m.type === "accept" && typeof m.firstUnchosen === "number") return m.firstUnchosen;
  return -1;
}

/** The peer frame as `PeerLink.send` writes it. */
export function peerFrameText(message: Message): string {
  return JSON.stringify({ v: 1, t: "msg", m: message });
}

export function opsBytes(): number {
  return COMMANDS.reduce((total, command) => total + JSON.stringify((command.body as { op: unknown }).op).length, 0);
}

export { Samples, median };

/** Node's parseArgs, after dropping the literal `--` that `pnpm bench -- --flag` passes through. */
export function scriptArguments(): string[] {
  const rest = process.argv.slice(2);
  return rest[0] === "--" ? rest.slice(1) : rest;
}

export function pad(text: string | number, width: number): string {
  return String(text).padStart(width);
}

/**
 * A/B variants of two suggested fixes, applied without touching src/ by
 * wrapping ws's prototypes in this process (the child does the same). Each
 * can be switched on and off between cases, so one run measures both sides
 * on the same machine minutes apart.
 *
 * - `zero-mask`: every client socket (PeerLink, SynodClient, the floor's
 *   client) masks its frames with the all-zero key, as if each were created
 *   with ws's `generateMask: (mask) => mask.fill(0)` option. ws then skips the
 *   per-byte JavaScript XOR on send, the receiver skips the unmask, and text
 *   frames are written without converting them to a Buffer first.
 * - `cork`: the first `send` on a socket in a tick corks the TCP socket and a
 *   `process.nextTick` uncorks it, so every frame sent in that tick leaves in
 *   one `writev` instead of one each.
 */
export const VARIANTS = ["zero-mask", "cork"] as const;
export type Variant = (typeof VARIANTS)[number];
const active = { "zero-mask": false, cork: false };
let installed = false;

type Socket = { cork(): void; uncork(): void; destroyed: boolean };

export function setVariants(on: readonly Variant[]): void {
  if (!installed && on.length > 0) install();
  active["zero-mask"] = on.includes("zero-mask");
  active.cork = on.includes("cork");
}

function install(): void {
  installed = true;
  const zero = (mask: Buffer): void => {
    mask.fill(0);
  };
  const sender = (ws as unknown as { Sender: { prototype: Record<string, unknown> } }).Sender.prototype;
  const senderSend = sender.send as (this: { _generateMask?: (mask: Buffer) => void }, ...rest: unknown[]) => void;
  sender.send = function (this: { _generateMask?: (mask: Buffer) => void }, ...rest: unknown[]): void {
    // Only sockets created without a generateMask of their own (all of them here) are switched.
    if (this._generateMask === undefined || this._generateMask === zero) this._generateMask = active["zero-mask"] ? zero : undefined;
    senderSend.apply(this, rest);
  };
  const corked = new Set<Socket>();
  const uncorkAll = (): void => {
    for (const socket of corked) if (!socket.destroyed) socket.uncork();
    corked.clear();
  };
  const socketPrototype = ws.WebSocket.prototype as unknown as Record<string, unknown>;
  const socketSend = socketPrototype.send as (this: { _socket?: Socket }, ...rest: unknown[]) => void;
  socketPrototype.send = function (this: { _socket?: Socket }, ...rest: unknown[]): void {
    const socket = this._socket;
    if (active.cork && socket !== undefined && !corked.has(socket)) {
      if (corked.size === 0) process.nextTick(uncorkAll);
      corked.add(socket);
      socket.cork();
    }
    socketSend.apply(this, rest);
  };
}
