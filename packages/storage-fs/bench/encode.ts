/**
 * CPU cost of encoding one slot record as FileStorage.commit does
 * (src/codec.ts encodeRecord → src/frame.ts encodeFrame), its parts, and an
 * A/B against alternative framings that produce byte-identical frames
 * (checked before timing).
 *
 *   tsx --conditions=@synod/source bench/encode.ts [--reps n]
 */
import { parseArgs } from "node:util";
import { crc32c } from "@node-rs/crc32";
import type { SlotRecord } from "@synod/core";
import { encodeRecord } from "../src/codec.js";
import { FRAME_HEADER_BYTES, FRAME_MAGIC, FrameKind } from "../src/frame.js";
import { median, now, recordFor } from "./harness.js";

const { values: args } = parseArgs({ options: { reps: { type: "string", default: "5" } } });
const REPS = Number(args.reps);

/** CRC32C (Castagnoli, reflected 0x82F63B78), slicing-by-8, same results as @node-rs/crc32's crc32c(input, initial). */
const TABLE = new Int32Array(256 * 8);
for (let n = 0; n < 256; n += 1) {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  TABLE[n] = c;
}
for (let n = 0; n < 256; n += 1) {
  for (let s = 1; s < 8; s += 1) {
    const previous = TABLE[(s - 1) * 256 + n] as number;
    TABLE[s * 256 + n] = (previous >>> 8) ^ (TABLE[previous & 0xff] as number);
  }
}
function jsCrc32c(bytes: Uint8Array, start: number, end: number, initial = 0): number {
  const t = TABLE;
  let c = ~initial;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    c ^= (bytes[i] as number) | ((bytes[i + 1] as number) << 8) | ((bytes[i + 2] as number) << 16) | ((bytes[i + 3] as number) << 24);
    c =
      (t[1792 + (c & 0xff)] as number) ^
      (t[1536 + ((c >>> 8) & 0xff)] as number) ^
      (t[1280 + ((c >>> 16) & 0xff)] as number) ^
      (t[1024 + (c >>> 24)] as number) ^
      (t[768 + (bytes[i + 4] as number)] as number) ^
      (t[512 + (bytes[i + 5] as number)] as number) ^
      (t[256 + (bytes[i + 6] as number)] as number) ^
      (t[bytes[i + 7] as number] as number);
  }
  for (; i < end; i += 1) c = (t[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return ~c >>> 0;
}

function header(frame: Buffer, length: number): void {
  frame[0] = FRAME_MAGIC;
  frame[1] = FrameKind.record;
  frame.writeUInt32LE(length, 2);
}

const variants: Record<string, (record: SlotRecord) => Buffer> = {
  "src encodeRecord": encodeRecord,
  "A: JS CRC of 5-byte head + 1 native call": (record) => {
    const payload = Buffer.from(JSON.stringify(record));
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
    header(frame, payload.length);
    frame.set(payload, FRAME_HEADER_BYTES);
    frame.writeUInt32LE(crc32c(payload, jsCrc32c(frame, 1, 6)), 6);
    return frame;
  },
  "B: JSON written in place + JS CRC": (record) => {
    const json = JSON.stringify(record);
    const length = Buffer.byteLength(json);
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + length);
    header(frame, length);
    frame.write(json, FRAME_HEADER_BYTES, length, "utf8");
    frame.writeUInt32LE(jsCrc32c(frame, FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length, jsCrc32c(frame, 1, 6)), 6);
    return frame;
  },
};

const records = Array.from({ length: 256 }, (_, i) => recordFor(100_000 + i));
for (const [name, encode] of Object.entries(variants)) {
  if (!records.every((record) => encode(record).equals(encodeRecord(record)))) throw new Error(`${name}: frames differ from src`);
}
const sampleFrame = encodeRecord(records[0] as SlotRecord);
const sampleJson = JSON.stringify(records[0]);
const samplePayload = Buffer.from(sampleJson);
const parts: Record<string, (record: SlotRecord) => unknown> = {
  "part: JSON.stringify(record)": (record) => JSON.stringify(record),
  "part: Buffer.from(json)": () => Buffer.from(sampleJson),
  "part: crc32c(payload) (1 native call)": () => crc32c(samplePayload),
  "part: crc32c(frame.subarray(1, 6))": () => crc32c(sampleFrame.subarray(1, 6)),
  "part: src checksum (2 subarrays + 2 calls)": () => crc32c(sampleFrame.subarray(FRAME_HEADER_BYTES), crc32c(sampleFrame.subarray(1, 6))),
};

const ROUNDS = 200_000;
const timings = new Map<string, number[]>();
console.log(`encode cost per record (${sampleFrame.length}-byte frame), ${REPS} reps interleaved, µs`);
for (let rep = 0; rep < REPS; rep += 1) {
  for (const [name, f] of [...Object.entries(variants), ...Object.entries(parts)]) {
    for (let i = 0; i < ROUNDS / 4; i += 1) f(records[i & 255] as SlotRecord);
    const start = now();
    for (let i = 0; i < ROUNDS; i += 1) f(records[i & 255] as SlotRecord);
    timings.set(name, [...(timings.get(name) ?? []), ((now() - start) * 1000) / ROUNDS]);
  }
}
for (const [name, values] of timings) {
  console.log(`${name.padEnd(44)} median ${median(values).toFixed(2).padStart(5)}  (${values.map((v) => v.toFixed(2)).join(" ")})`);
}
