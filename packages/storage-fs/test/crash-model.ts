import type { Value } from "@synod/core";

/**
 * What the crash test's child writes, as pure functions of (seed, slot), so
 * the parent can tell every value read back from garbage or an invention.
 * Shared by `crash-child.ts` (bundled) and `crash.test.ts`.
 */

export const CRASH_NODE = "crash";

/** 32-bit FNV-1a over a string's UTF-16 code units, then mixed (not cryptographic: a fingerprint). */
export function hash32(text: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let index = 0; index < text.length; index += 1) {
    h ^= text.charCodeAt(index);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d) >>> 0;
  h ^= h >>> 12;
  return h >>> 0;
}

/** The one value slot `slot` ever holds in a crash run with this seed. Sizes vary from tiny to ~1 KiB. */
export function expectedValue(seed: number, slot: number): Value {
  const h = hash32(`${seed}/${slot}`);
  if (h % 13 === 0) return { type: "noop" };
  const commands = 1 + (h % 3);
  const padding = (h >>> 4) % 7 === 0 ? 600 + ((h >>> 8) % 400) : (h >>> 8) % 120;
  return {
    type: "batch",
    time: slot * 10 + (h % 10),
    commands: Array.from({ length: commands }, (_, index) => ({
      session: `s-${seed}`,
      seq: slot * 4 + index,
      body: { type: "op" as const, op: `op-${seed}-${slot}-${index}-${"x".repeat(index === 0 ? padding : 3)}` },
    })),
  };
}

/** JSON with object keys sorted, so a value decoded by a schema (which may reorder keys) digests the same. */
export function canonicalJson(input: unknown): string {
  if (input === null || typeof input !== "object") return JSON.stringify(input) ?? "undefined";
  if (Array.isArray(input)) return `[${input.map(canonicalJson).join(",")}]`;
  const entries = Object.keys(input)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalJson((input as Record<string, unknown>)[key])}`);
  return `{${entries.join(",")}}`;
}

/** A fingerprint of a value: two 32-bit hashes of its canonical JSON. */
export function valueDigest(value: unknown): string {
  const text = canonicalJson(value);
  return `${hash32(text).toString(16)}.${hash32(text, 0x9747b28c).toString(16)}.${text.length}`;
}

/** The snapshot data for a snapshot through `slot`. */
export function snapshotData(seed: number, slot: number): Uint8Array {
  const h = hash32(`snap/${seed}/${slot}`);
  const data = new Uint8Array(32 + (h % 200));
  for (let index = 0; index < data.length; index += 1) data[index] = ((h >>> (index % 24)) & 0xff) ^ (index & 0xff);
  return data;
}

export function bytesDigest(bytes: Uint8Array): string {
  return valueDigest(Array.from(bytes));
}

/** Lines the child prints, one JSON object each. */
export type ChildLine =
  | {
      readonly t: "state";
      /** slot, ballot round, ballot node, value digest, chosen (1/0). */
      readonly records: readonly (readonly [number, number, string, string, number])[];
      readonly promised: { readonly round: number; readonly node: string };
      readonly logStart: number;
      readonly snapshot: { readonly slot: number; readonly digest: string; readonly handleOk: boolean } | null;
      readonly tornTail: { readonly file: string; readonly offset: number; readonly droppedBytes: number; readonly reason: string } | null;
      readonly removed: readonly string[];
      readonly segments: number;
      readonly commits: number;
    }
  /** An intent, printed before `persist` is called: id, record ballot round, record slots, slots written chosen, marks, promise round, truncateBefore. */
  | {
      readonly t: "i";
      readonly n: number;
      readonly b: number;
      readonly r: readonly number[];
      readonly c: readonly number[];
      readonly m: readonly number[];
      readonly p: number | null;
      readonly tb: number | null;
    }
  /** `persist` of intent `n` resolved. */
  | { readonly t: "a"; readonly n: number }
  /** A snapshot through `slot` is about to be saved / was saved. */
  | { readonly t: "si"; readonly slot: number }
  | { readonly t: "sa"; readonly slot: number }
  | { readonly t: "error"; readonly name: string; readonly message: string };
