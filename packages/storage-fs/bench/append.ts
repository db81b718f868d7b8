/**
 * Append benchmark of FileStorage against the raw write + fdatasync floor of
 * the same disk.
 *
 *   pnpm bench [--dir <parent dir>] [--duration <s>] [--warmup <s>] [--reps <n>] [--appenders 1,16,256]
 *
 * Every case runs `--reps` times, round-robin (rep 1 of every case, then rep
 * 2, ...) so that a noisy spell on the shared machine spreads over all cases;
 * every repetition is printed, then the medians.
 */
import { closeSync, constants, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { open } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { FileStorage } from "../src/index.js";
import { type Result, benchOptions, Samples, cpuSince, median, now, recordFor, runAppenders } from "./harness.js";

// ---------------------------------------------------------------- options

const options = benchOptions();
const DURATION_MS = options.durationMs;
const WARMUP_MS = options.warmupMs;
const REPS = options.reps;
const APPENDERS = options.appenders;
const FLOOR_BYTES = 100;
const TARGET_RATIO = 1.5;
const TARGET_RECORDS_PER_SECOND = 100_000;

const root = mkdtempSync(join(options.dir ?? tmpdir(), "synod-bench-"));
let cleaned = false;
function cleanup(): void {
  if (cleaned) return;
  cleaned = true;
  rmSync(root, { recursive: true, force: true });
}
process.on("exit", cleanup);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    cleanup();
    process.exit(130);
  });
}
let caseNumber = 0;
function freshPath(name: string): string {
  caseNumber += 1;
  return join(root, `${caseNumber}-${name}`);
}

// ---------------------------------------------------------------- floor

/**
 * `FileHandle.write(100 bytes)` + `FileHandle.datasync()` in a loop: what
 * FileStorage's commit does, minus FileStorage. With `dsync`, the file is
 * opened O_DSYNC and there is no datasync call: one thread pool round trip
 * per operation instead of two (shown for comparison, not used by FileStorage).
 */
async function floorAsync(dsync: boolean): Promise<Result> {
  const path = freshPath(dsync ? "floor-dsync.log" : "floor-async.log");
  const handle = await open(path, dsync ? constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_DSYNC : "a");
  const buffer = Buffer.alloc(FLOOR_BYTES, 0x5a);
  try {
    return await measureFloor(async () => {
      await handle.write(buffer);
      if (!dsync) await handle.datasync();
    });
  } finally {
    await handle.close();
  }
}

/** `fs.writeSync` + `fs.fdatasyncSync`: no thread pool round trips (it blocks the event loop, so it is a floor only). */
async function floorSync(): Promise<Result> {
  const fd = openSync(freshPath("floor-sync.log"), "a");
  const buffer = Buffer.alloc(FLOOR_BYTES, 0x5a);
  try {
    return await measureFloor(() => {
      writeSync(fd, buffer);
      fdatasyncSync(fd);
    });
  } finally {
    closeSync(fd);
  }
}

/** Runs `append` back to back through the warm-up and the measured window; a synchronous one is not awaited. */
async function measureFloor(append: () => void | Promise<void>): Promise<Result> {
  const samples = new Samples();
  let operations = 0;
  let cpuAtStart: NodeJS.CpuUsage | undefined;
  let cpu = 0;
  const start = now();
  const measureFrom = start + WARMUP_MS;
  const measureTo = measureFrom + DURATION_MS;
  for (;;) {
    const begin = now();
    if (cpuAtStart === undefined && begin >= measureFrom) cpuAtStart = process.cpuUsage();
    if (begin >= measureTo) {
      cpu = cpuAtStart === undefined ? Number.NaN : cpuSince(cpuAtStart);
      break;
    }
    const pending = append();
    if (pending !== undefined) await pending;
    const end = now();
    if (begin >= measureFrom && end <= measureTo) {
      samples.push((end - begin) * 1000);
      operations += 1;
    }
  }
  return { perSecond: operations / (DURATION_MS / 1000), p50: samples.percentile(50), p99: samples.percentile(99), perCommit: undefined, bytesPerOp: FLOOR_BYTES, cpuPerOp: cpu / operations };
}

// ---------------------------------------------------------------- FileStorage

async function storageCase(appenders: number): Promise<Result> {
  const storage = await FileStorage.open(freshPath(`storage-${appenders}`), { nodeId: "bench-a" });
  try {
    return await runAppenders(storage, appenders, WARMUP_MS, DURATION_MS);
  } finally {
    await storage.close();
  }
}

// ---------------------------------------------------------------- run

interface Case {
  readonly name: string;
  readonly run: () => Promise<Result> | Result;
  readonly results: Result[];
}

const cases: Case[] = [
  { name: "floor: FileHandle write+datasync", run: () => floorAsync(false), results: [] },
  { name: "floor: writeSync+fdatasyncSync", run: floorSync, results: [] },
  { name: "(info) FileHandle O_DSYNC write", run: () => floorAsync(true), results: [] },
  ...APPENDERS.map((n): Case => ({ name: `FileStorage ${n} appender${n === 1 ? "" : "s"}`, run: () => storageCase(n), results: [] })),
];

const fmt = (value: number | undefined, digits = 0): string =>
  value === undefined || Number.isNaN(value) ? "-" : value.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

const COLUMNS = ["case", "ops|records/s", "p50 µs", "p99 µs", "records/commit", "bytes/op", "CPU µs/op"];
const WIDTHS = [36, 14, 10, 10, 15, 9, 10];
function row(cells: readonly string[]): string {
  return cells.map((cell, i) => (i === 0 ? cell.padEnd(WIDTHS[i] ?? 0) : cell.padStart(WIDTHS[i] ?? 0))).join("  ");
}
function resultRow(name: string, result: Result): string {
  return row([name, fmt(result.perSecond), fmt(result.p50), fmt(result.p99), fmt(result.perCommit, 1), fmt(result.bytesPerOp), fmt(result.cpuPerOp, 1)]);
}

const sampleValueBytes = JSON.stringify(recordFor(123_456).value).length;
const sampleRecordBytes = JSON.stringify(recordFor(123_456)).length;
console.log(`synod storage-fs append benchmark  ${new Date().toISOString()}`);
console.log(`node ${process.version}, ${process.platform}/${process.arch}, ${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}, dir ${root}`);
console.log(
  `each case: ${WARMUP_MS / 1000}s warm-up + ${DURATION_MS / 1000}s measured, ${REPS} repetitions round-robin; ` +
    `floor writes ${FLOOR_BYTES} B; record value ${sampleValueBytes} B JSON (whole record ${sampleRecordBytes} B + 10 B frame header, + 26 B commit frame per group)`,
);
console.log();
console.log(row(COLUMNS));
try {
  for (let rep = 1; rep <= REPS; rep += 1) {
    for (const c of cases) {
      const result = await c.run();
      c.results.push(result);
      console.log(resultRow(`${c.name} #${rep}`, result));
    }
  }
} catch (error) {
  cleanup();
  throw error;
}

const medians = new Map<string, Result>();
for (const c of cases) {
  const pick = (field: keyof Result): number => median(c.results.map((r) => r[field] ?? Number.NaN));
  medians.set(c.name, { perSecond: pick("perSecond"), p50: pick("p50"), p99: pick("p99"), perCommit: c.name.startsWith("FileStorage") ? pick("perCommit") : undefined, bytesPerOp: pick("bytesPerOp"), cpuPerOp: pick("cpuPerOp") });
}
console.log();
console.log(`medians of ${REPS} (load average now ${loadavg().map((l) => l.toFixed(2)).join(" ")}):`);
console.log(row(COLUMNS));
for (const [name, result] of medians) console.log(resultRow(name, result));

const floor = medians.get(cases[0]?.name ?? "") as Result;
const floorSyncMedian = medians.get(cases[1]?.name ?? "") as Result;
const one = medians.get("FileStorage 1 appender");
const many = medians.get("FileStorage 256 appenders");
console.log();
if (one !== undefined) {
  const ratio = one.p50 / floor.p50;
  const perRep = cases
    .find((c) => c.name === "FileStorage 1 appender")
    ?.results.map((r, i) => fmt(r.p50 / (cases[0]?.results[i]?.p50 ?? Number.NaN), 2))
    .join(", ");
  console.log(
    `1-appender p50 / floor p50 (FileHandle): ${fmt(ratio, 2)}× (per rep: ${perRep}), target ≤ ${TARGET_RATIO}×: ${ratio <= TARGET_RATIO ? "MET" : "NOT MET"}` +
      `;  vs sync floor: ${fmt(one.p50 / floorSyncMedian.p50, 2)}×`,
  );
}
if (many !== undefined) {
  console.log(
    `256 appenders: ${fmt(many.perSecond)} records/s (per rep: ${cases
      .find((c) => c.name === "FileStorage 256 appenders")
      ?.results.map((r) => fmt(r.perSecond))
      .join(", ")}), target ≥ ${fmt(TARGET_RECORDS_PER_SECOND)}: ${many.perSecond >= TARGET_RECORDS_PER_SECOND ? "MET" : "NOT MET"}`,
  );
}
cleanup();
