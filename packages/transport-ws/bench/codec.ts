/**
 * Codec cost per peer message, in one process (no sockets): what `PeerLink`
 * and `SynodServer` do to every message today (JSON.stringify, the UTF-8
 * conversions ws and the server make, JSON.parse, the nesting-depth check,
 * zod `peerMessageFrame`), against alternatives sketched for the bench only
 * (`codecs.ts`):
 *
 * - JSON with a hand-written validator instead of zod (splits JSON's cost from zod's);
 * - `v8.serialize`/`deserialize` (a generic binary codec in Node) + zod;
 * - a hand-written binary codec for the hot messages (heartbeat,
 *   heartbeat-reply, accepted, accept/success), validating while it decodes;
 *   application ops are `unknown` to Synod, so they travel as JSON text inside it.
 *
 * The same codecs also run between the two processes in round-trip.ts
 * (`--paths floor,ws+json,ws+json-hand,ws+bin,peer`), where caches are cold.
 *
 *   tsx --conditions=@synod/source bench/codec.ts [--budget-ms 150] [--reps 3]
 *
 * (`pnpm bench` runs this at the end of round-trip.ts with a shorter budget,
 * for the small and 4k messages only.)
 */
import { isDeepStrictEqual, parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import { deserialize, serialize } from "node:v8";
import type { Message } from "@synod/core";
import { peerMessageFrame } from "../src/index.js";
import { MAX_NESTING_DEPTH, nestedDeeperThan } from "../src/limits.js";
import * as ws from "ws";
import { type OpBytes, decodeBinary, deeperThan, encodeBinary, validateByHand } from "./codecs.js";
import { accept, heartbeat, median, pad, peerFrameText, scriptArguments } from "./shared.js";

// ---------------------------------------------------------------- measurement

/** ws's public static `Sender.frame` (untyped in @types/ws): frames and, for a client, masks `data` in place. */
const senderFrame = (ws as unknown as { Sender: { frame(data: Buffer, options: Record<string, unknown>): Buffer[] } }).Sender.frame;

/** The encoded bytes of every op in `message`, as the client would have sent them. */
function opBytesOf(message: Message): OpBytes {
  const bytes: OpBytes = new WeakMap();
  if (message.type === "accept" || message.type === "success") {
    for (const entry of message.entries) {
      if (entry.value.type !== "batch") continue;
      for (const command of entry.value.commands) {
        const op = command.body.type === "op" ? command.body.op : undefined;
        if (typeof op === "object" && op !== null) bytes.set(op, Buffer.from(JSON.stringify(op)));
      }
    }
  }
  return bytes;
}

let sink = 0;
function consume(value: unknown): void {
  if (value === undefined) sink += 1;
}

/** ns per call of `fn`, over about `budgetMs` (after a short warm-up). */
function time(fn: () => void, budgetMs: number): number {
  const warmEnd = performance.now() + Math.min(50, budgetMs / 4);
  while (performance.now() < warmEnd) for (let index = 0; index < 16; index += 1) fn();
  let calls = 0;
  const start = performance.now();
  const end = start + budgetMs;
  let t = start;
  while (t < end) {
    for (let index = 0; index < 64; index += 1) fn();
    calls += 64;
    t = performance.now();
  }
  return ((t - start) * 1e6) / calls;
}

interface Sample {
  readonly name: string;
  readonly message: Message;
}

/** `all` adds a third message (one command with one 4 KiB op: same bytes as 4k, far fewer objects). */
export async function runCodecBench(options: { budgetMs: number; reps: number; all?: boolean }): Promise<void> {
  // The nesting-depth check SynodServer runs on every frame before zod.
  const depth = { check: nestedDeeperThan, limit: MAX_NESTING_DEPTH };
  const samples: Sample[] = [
    { name: "small (heartbeat)", message: heartbeat(123_456) },
    { name: "4k (accept, 16 cmds)", message: accept(123_456) },
  ];
  // One command with one 4 KiB op: same bytes, far fewer objects for zod to walk.
  const big = accept(123_456) as Extract<Message, { type: "accept" }>;
  const firstValue = big.entries[0]?.value;
  if (options.all === true && firstValue?.type === "batch") {
    const op = { op: "put", key: "user:100000", value: "v".repeat(4096 - 40) };
    samples.push({
      name: "4k (accept, 1 cmd)",
      message: { ...big, entries: [{ slot: 123_456, value: { ...firstValue, commands: [{ session: "c0ffee", seq: 1, body: { type: "op", op } }] } }] },
    });
  }

  // Correctness first: every codec returns the message it was given, and rejects what zod rejects.
  for (const { message } of samples) {
    const text = peerFrameText(message);
    const viaZod = peerMessageFrame.safeParse(JSON.parse(text));
    if (!viaZod.success || !isDeepStrictEqual(viaZod.data.m, JSON.parse(JSON.stringify(message)))) throw new Error("zod round trip differs");
    const binary = encodeBinary(message);
    if (binary === undefined || !isDeepStrictEqual(decodeBinary(binary), JSON.parse(JSON.stringify(message)))) throw new Error("binary round trip differs");
    if (!binary.equals(encodeBinary(message, opBytesOf(message)) as Buffer)) throw new Error("kept op bytes differ from encoding them");
    if (!isDeepStrictEqual(validateByHand(JSON.parse(text)), JSON.parse(JSON.stringify(message)))) throw new Error("hand validator differs");
    for (const broken of [
      { ...message, from: "" },
      { ...message, ballot: { round: -1, node: "x" } },
      { ...message, firstUnchosen: 1.5 },
      { ...message, type: "nope" },
    ]) {
      const frame = JSON.parse(peerFrameText(broken as Message)) as unknown;
      if (peerMessageFrame.safeParse(frame).success || validateByHand(frame) !== undefined) throw new Error("a broken frame was accepted");
    }
    if (decodeBinary(binary.subarray(0, binary.length - 1)) !== undefined) throw new Error("a truncated binary frame was accepted");
  }
  // The alternative depth check agrees with src's on both sides of the limit.
  let nested: unknown = 1;
  for (let level = 0; level <= depth.limit + 1; level += 1) {
    nested = level % 2 === 0 ? [nested] : { a: nested };
    const frame = { v: 1, t: "msg", m: nested };
    if (depth.check(frame, depth.limit) !== deeperThan(frame, depth.limit)) throw new Error(`depth checks disagree at ${level}`);
  }

  type Step = { readonly name: string; readonly make: (message: Message) => () => void };
  const steps: Step[] = [
    { name: "JSON.stringify", make: (m) => () => consume(JSON.stringify({ v: 1, t: "msg", m })) },
    {
      name: "Buffer.from(text) (ws send)",
      make: (m) => {
        const text = peerFrameText(m);
        return () => consume(Buffer.from(text));
      },
    },
    {
      name: "buffer.toString() (server)",
      make: (m) => {
        const bytes = Buffer.from(peerFrameText(m));
        return () => consume(bytes.toString());
      },
    },
    {
      name: "JSON.parse",
      make: (m) => {
        const text = peerFrameText(m);
        return () => consume(JSON.parse(text));
      },
    },
    {
      name: "zod peerMessageFrame.safeParse",
      make: (m) => {
        const parsed: unknown = JSON.parse(peerFrameText(m));
        return () => consume(peerMessageFrame.safeParse(parsed).data);
      },
    },
    {
      name: "= JSON + zod, one direction",
      make: (m) => () => {
        const bytes = Buffer.from(JSON.stringify({ v: 1, t: "msg", m }));
        const result = peerMessageFrame.safeParse(JSON.parse(bytes.toString()));
        consume(result.data);
      },
    },
    {
      name: "src nestedDeeperThan (server, per frame)",
      make: (m) => {
        const parsed: unknown = JSON.parse(peerFrameText(m));
        return () => consume(depth.check(parsed, depth.limit) ? undefined : parsed);
      },
    },
    {
      name: "alt: recursive depth check",
      make: (m) => {
        const parsed: unknown = JSON.parse(peerFrameText(m));
        return () => consume(deeperThan(parsed, depth.limit) ? undefined : parsed);
      },
    },
    {
      name: "= JSON + depth check + zod (src now)",
      make: (m) => () => {
        const bytes = Buffer.from(JSON.stringify({ v: 1, t: "msg", m }));
        const parsed: unknown = JSON.parse(bytes.toString());
        if (depth.check(parsed, depth.limit)) return consume(undefined);
        consume(peerMessageFrame.safeParse(parsed).data);
      },
    },
    {
      name: "hand validator (instead of zod)",
      make: (m) => {
        const parsed: unknown = JSON.parse(peerFrameText(m));
        return () => consume(validateByHand(parsed));
      },
    },
    {
      name: "= JSON + hand validator, one direction",
      make: (m) => () => {
        const bytes = Buffer.from(JSON.stringify({ v: 1, t: "msg", m }));
        consume(validateByHand(JSON.parse(bytes.toString())));
      },
    },
    {
      name: "= v8.serialize/deserialize + zod",
      make: (m) => () => {
        const bytes = serialize({ v: 1, t: "msg", m });
        consume(peerMessageFrame.safeParse(deserialize(bytes)).data);
      },
    },
    { name: "binary encode", make: (m) => () => consume(encodeBinary(m)) },
    {
      name: "binary decode + validate",
      make: (m) => {
        const bytes = encodeBinary(m) as Buffer;
        return () => consume(decodeBinary(bytes));
      },
    },
    { name: "= binary, one direction", make: (m) => () => consume(decodeBinary(encodeBinary(m) as Buffer)) },
    {
      name: "binary encode, ops kept as bytes",
      make: (m) => {
        const opBytes = opBytesOf(m);
        return () => consume(encodeBinary(m, opBytes));
      },
    },
    {
      name: "= binary, ops kept as bytes",
      make: (m) => {
        const opBytes = opBytesOf(m);
        return () => consume(decodeBinary(encodeBinary(m, opBytes) as Buffer));
      },
    },
    // Not codec, for scale: what ws does to every frame a client socket sends (and a server unmasks the same way).
    {
      name: "(ws) frame + mask, client send",
      make: (m) => {
        const bytes = Buffer.from(peerFrameText(m));
        return () => consume(senderFrame(bytes, { fin: true, mask: true, opcode: 1, readOnly: false, rsv1: false }));
      },
    },
    {
      name: "(ws) frame, zero mask",
      make: (m) => {
        const bytes = Buffer.from(peerFrameText(m));
        const zero = (mask: Buffer): void => {
          mask.fill(0);
        };
        return () => consume(senderFrame(bytes, { fin: true, mask: true, generateMask: zero, opcode: 1, readOnly: false, rsv1: false }));
      },
    },
  ];

  const results = new Map<string, number[]>();
  const key = (sample: Sample, step: Step): string => `${sample.name}|${step.name}`;
  const started = performance.now();
  for (let rep = 0; rep < options.reps; rep += 1) {
    for (const sample of samples) {
      for (const step of steps) {
        const ns = time(step.make(sample.message), options.budgetMs);
        const list = results.get(key(sample, step)) ?? [];
        list.push(ns);
        results.set(key(sample, step), list);
      }
    }
  }

  console.log(`codec cost per message (ns, median of ${options.reps} reps of ~${options.budgetMs} ms each; one direction = sender's encode + receiver's decode)`);
  const width = 40;
  console.log(`${"".padEnd(width)} ${samples.map((s) => pad(s.name, 22)).join(" ")}`);
  console.log(`${"bytes on the wire: JSON frame".padEnd(width)} ${samples.map((s) => pad(Buffer.byteLength(peerFrameText(s.message)), 22)).join(" ")}`);
  console.log(`${"bytes on the wire: v8.serialize".padEnd(width)} ${samples.map((s) => pad(serialize({ v: 1, t: "msg", m: s.message }).length, 22)).join(" ")}`);
  console.log(`${"bytes on the wire: binary sketch".padEnd(width)} ${samples.map((s) => pad((encodeBinary(s.message) as Buffer).length, 22)).join(" ")}`);
  for (const step of steps) {
    const cells = samples.map((sample) => pad(median(results.get(key(sample, step)) ?? []).toFixed(0), 22));
    console.log(`${step.name.padEnd(width)} ${cells.join(" ")}`);
  }
  const perRoundTrip = (stepName: string, sample: Sample): number => {
    const step = steps.find((s) => s.name === stepName) as Step;
    // Each process of a peer round trip encodes one message and decodes one.
    return median(results.get(key(sample, step)) ?? []) / 1000;
  };
  console.log(
    `per process per peer round trip (one encode + one decode), µs: ` +
      samples
        .map(
          (s) =>
            `${s.name}: src (JSON+depth check+zod) ${perRoundTrip("= JSON + depth check + zod (src now)", s).toFixed(1)}, ` +
            `JSON+hand ${perRoundTrip("= JSON + hand validator, one direction", s).toFixed(1)}, binary ${perRoundTrip("= binary, one direction", s).toFixed(1)}`,
        )
        .join("; "),
  );
  console.log(`codec bench took ${((performance.now() - started) / 1000).toFixed(1)} s${sink < 0 ? "" : ""}`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    args: scriptArguments(),
    options: { "budget-ms": { type: "string", default: "150" }, reps: { type: "string", default: "3" } },
  });
  const budgetMs = Number(values["budget-ms"]);
  const reps = Number(values.reps);
  if (!(budgetMs > 0) || !(reps >= 1)) throw new Error("bad arguments: --budget-ms n --reps n");
  await runCodecBench({ budgetMs, reps, all: true });
}
