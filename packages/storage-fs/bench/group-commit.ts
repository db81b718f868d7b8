/**
 * Diagnosis of FileStorage's group commit (companion to append.ts):
 *
 * 1. where a commit's time goes: group size, JS encode time, write(), fdatasync,
 *    and the idle gap between one commit's end and the next one's start;
 * 2. an A/B of fixes patched onto the instance at run time (src/ is not
 *    edited): when a new flush starts (as in src/: synchronously inside the
 *    first `persist`; or deferred by one microtask, or by `setImmediate`),
 *    and the active segment opened O_DSYNC instead of write + datasync;
 * 3. the CPU cost of encoding one group (JSON + frame + CRC32C + concat).
 *
 *   tsx --conditions=@synod/source bench/group-commit.ts [--dir d] [--duration s] [--warmup s] [--reps n]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { constants } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import type { PersistBatch } from "@synod/core";
import { encodeCommit, encodeRecord } from "../src/codec.js";
import { FileStorage } from "../src/index.js";
import { type Result, benchOptions, median, now, recordFor, runAppenders } from "./harness.js";

const options = benchOptions();
const DURATION_MS = options.durationMs;
const WARMUP_MS = options.warmupMs;
const REPS = options.reps;
const APPENDERS = options.appenders;

const root = mkdtempSync(join(options.dir ?? tmpdir(), "synod-bench-gc-"));
process.on("exit", () => rmSync(root, { recursive: true, force: true }));
let caseNumber = 0;

/** FileStorage's private members this script instruments (runtime JS properties). */
interface Internals {
  active: FileHandle;
  readonly segments: readonly { readonly name: string }[];
  flushLoop(): Promise<void>;
  commit(batches: readonly PersistBatch[]): Promise<void>;
}

type Deferral = "as in src" | "microtask" | "setImmediate";
interface Variant {
  readonly name: string;
  readonly deferral: Deferral;
  readonly dsync: boolean;
}
const VARIANTS: readonly Variant[] = [
  { name: "as in src", deferral: "as in src", dsync: false },
  { name: "defer: microtask", deferral: "microtask", dsync: false },
  { name: "defer: setImmediate", deferral: "setImmediate", dsync: false },
  { name: "defer: microtask + O_DSYNC", deferral: "microtask", dsync: true },
];

/** Reopens the active segment O_DSYNC; its datasync becomes a no-op (the write is already durable when it resolves). */
async function useDsync(storage: FileStorage): Promise<void> {
  const internals = storage as unknown as Internals;
  const segment = internals.segments.at(-1);
  if (segment === undefined) throw new Error("no active segment");
  await internals.active.close();
  const handle = await open(join(storage.directory, segment.name), constants.O_WRONLY | constants.O_APPEND | constants.O_DSYNC);
  handle.datasync = async () => undefined;
  internals.active = handle;
}

interface Breakdown {
  groups: number[];
  encodeUs: number[];
  writeUs: number[];
  syncUs: number[];
  gapUs: number[];
}

function instrument(storage: FileStorage, deferral: Deferral, breakdown: Breakdown): void {
  const internals = storage as unknown as Internals;
  const commit = internals.commit;
  let lastEnd: number | undefined;
  internals.commit = async function (this: Internals, batches: readonly PersistBatch[]): Promise<void> {
    const start = now();
    if (lastEnd !== undefined) breakdown.gapUs.push((start - lastEnd) * 1000);
    breakdown.groups.push(batches.length);
    const active = this.active;
    const write = active.write;
    const datasync = active.datasync;
    let writeAt = 0;
    let syncAt = 0;
    (active as { write: unknown }).write = async function (this: FileHandle, ...rest: unknown[]) {
      writeAt = now();
      breakdown.encodeUs.push((writeAt - start) * 1000);
      return (write as (...a: unknown[]) => Promise<unknown>).apply(this, rest);
    };
    active.datasync = async function (this: FileHandle) {
      syncAt = now();
      breakdown.writeUs.push((syncAt - writeAt) * 1000);
      await datasync.call(this);
      breakdown.syncUs.push((now() - syncAt) * 1000);
    };
    try {
      await commit.call(this, batches);
    } finally {
      (active as { write: unknown }).write = write;
      active.datasync = datasync;
      lastEnd = now();
    }
  };
  if (deferral === "as in src") return;
  const flushLoop = internals.flushLoop;
  internals.flushLoop = async function (this: Internals): Promise<void> {
    if (deferral === "microtask") await undefined;
    else await new Promise<void>((resolve) => setImmediate(resolve));
    return flushLoop.call(this);
  };
}

interface Run extends Result {
  readonly singletons: number;
  readonly cycle: number;
  readonly encode: number;
  readonly write: number;
  readonly sync: number;
  readonly gap: number;
}

const mean = (values: readonly number[]): number => values.reduce((sum, value) => sum + value, 0) / values.length;

async function run(appenders: number, variant: Variant): Promise<Run> {
  caseNumber += 1;
  const storage = await FileStorage.open(join(root, String(caseNumber)), { nodeId: "bench-a" });
  if (variant.dsync) await useDsync(storage);
  const breakdown: Breakdown = { groups: [], encodeUs: [], writeUs: [], syncUs: [], gapUs: [] };
  instrument(storage, variant.deferral, breakdown);
  try {
    const result = await runAppenders(storage, appenders, WARMUP_MS, DURATION_MS);
    const groups = breakdown.groups.length;
    return {
      ...result,
      singletons: groups > 0 ? breakdown.groups.filter((size) => size === 1).length / groups : Number.NaN,
      cycle: result.perCommit === undefined ? Number.NaN : (1e6 * result.perCommit) / result.perSecond,
      encode: mean(breakdown.encodeUs),
      write: mean(breakdown.writeUs),
      sync: mean(breakdown.syncUs),
      gap: mean(breakdown.gapUs),
    };
  } finally {
    await storage.close();
  }
}

const fmt = (value: number, digits = 0): string => (Number.isNaN(value) ? "-" : value.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }));
const WIDTHS = [40, 10, 7, 7, 10, 6, 8, 9, 9, 8, 9, 7];
const row = (cells: readonly string[]): string => cells.map((cell, i) => (i === 0 ? cell.padEnd(WIDTHS[i] ?? 0) : cell.padStart(WIDTHS[i] ?? 0))).join(" ");
const header = row(["case", "records/s", "p50 µs", "p99 µs", "rec/commit", "size-1", "CPU µs/rec", "cycle µs", "encode µs", "write µs", "fdsync µs", "gap µs"]);
const line = (name: string, r: Run): string =>
  row([name, fmt(r.perSecond), fmt(r.p50), fmt(r.p99), fmt(r.perCommit ?? Number.NaN, 1), `${fmt(r.singletons * 100)}%`, fmt(r.cpuPerOp, 1), fmt(r.cycle), fmt(r.encode), fmt(r.write), fmt(r.sync), fmt(r.gap)]);

console.log(`group commit diagnosis ${new Date().toISOString()}, node ${process.version}, ${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}, dir ${root}`);
console.log(`${WARMUP_MS / 1000}s warm-up + ${DURATION_MS / 1000}s measured, ${REPS} reps round-robin`);
console.log("size-1: share of group commits holding a single batch; CPU µs/rec: process CPU (all threads) per record; cycle: measured time / commits;");
console.log("encode: commit() start to write() call (JSON, frames, CRC, concat); write, fdsync: each call until resolved;");
console.log("gap: previous commit's end to this one's start (resolving, appenders' next persist). encode..gap are means per commit.\n");
console.log(header);
const results = new Map<string, Run[]>();
for (let rep = 1; rep <= REPS; rep += 1) {
  for (const appenders of APPENDERS) {
    for (const variant of VARIANTS) {
      const name = `${appenders} app, ${variant.name}`;
      const r = await run(appenders, variant);
      results.set(name, [...(results.get(name) ?? []), r]);
      console.log(line(`${name} #${rep}`, r));
    }
  }
}
console.log(`\nmedians of ${REPS}:`);
console.log(header);
for (const [name, runs] of results) {
  const pick = (field: keyof Run): number => median(runs.map((r) => r[field] ?? Number.NaN));
  console.log(
    line(name, {
      perSecond: pick("perSecond"),
      p50: pick("p50"),
      p99: pick("p99"),
      perCommit: pick("perCommit"),
      bytesPerOp: pick("bytesPerOp"),
      cpuPerOp: pick("cpuPerOp"),
      singletons: pick("singletons"),
      cycle: pick("cycle"),
      encode: pick("encode"),
      write: pick("write"),
      sync: pick("sync"),
      gap: pick("gap"),
    }),
  );
}

// CPU cost of encoding one group as FileStorage.commit does.
console.log("\nencode cost (CPU only, as commit() does: encodeRecord per record, encodeCommit, Buffer.concat):");
for (const size of [1, 128, 256]) {
  const records = Array.from({ length: size }, (_, i) => recordFor(100_000 + i));
  const rounds = Math.max(200, Math.floor(200_000 / size));
  let bytes = 0;
  const encodeGroup = (): void => {
    const frames = records.map(encodeRecord);
    frames.push(encodeCommit({ sequence: 1, groupStart: 0 }));
    bytes = Buffer.concat(frames).length;
  };
  for (let i = 0; i < rounds / 4; i += 1) encodeGroup();
  const start = now();
  for (let i = 0; i < rounds; i += 1) encodeGroup();
  const perGroup = ((now() - start) * 1000) / rounds;
  console.log(`  group of ${String(size).padStart(3)}: ${fmt(perGroup, 1)} µs per group, ${fmt(perGroup / size, 2)} µs per record, ${bytes} bytes`);
}
