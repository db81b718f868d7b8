/** Shared pieces of the storage-fs benchmarks: latency samples, medians, the record written, the appender loop. */
import { parseArgs } from "node:util";
import type { PersistBatch, SlotRecord } from "@synod/core";
import type { FileStorage } from "../src/index.js";
import { Samples, median } from "@synod/testkit";

export { Samples, median };

export interface Result {
  /** Operations (floor) or records (storage) completed per second in the measured window. */
  readonly perSecond: number;
  /** Latency per operation / per persist, microseconds. */
  readonly p50: number;
  readonly p99: number;
  /** Records per group commit (storage only). */
  readonly perCommit: number | undefined;
  /** Bytes appended per operation (floor: the write size; storage: appended bytes / records). */
  readonly bytesPerOp: number;
  /** Process CPU time (user + system, all threads) per operation / record over the measured window, microseconds. */
  readonly cpuPerOp: number;
}

/** CPU microseconds (user + system) since `since`. */
export function cpuSince(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return used.user + used.system;
}

export const now = (): number => performance.now();

const BALLOT = Object.freeze({ round: 7, node: "bench-a" });

/** One command in a batch value: `JSON.stringify(value)` is ~100 bytes at 5–6 digit slots. */
export function recordFor(slot: number): SlotRecord {
  return {
    slot,
    ballot: BALLOT,
    value: { type: "batch", time: 1_700_000_000_000, commands: [{ session: "s", seq: slot, body: { type: "op", op: slot % 100 } }] },
    chosen: false,
  };
}

export function batchFor(slot: number): PersistBatch {
  return { promised: undefined, records: [recordFor(slot)], chosen: [], truncateBefore: undefined };
}

/**
 * `appenders` concurrent loops of `await storage.persist(one record)` with
 * distinct slots: warm-up, then `durationMs` measured. Only persists that
 * start and end inside the measured window are counted.
 */
export async function runAppenders(storage: FileStorage, appenders: number, warmupMs: number, durationMs: number): Promise<Result> {
  const samples = new Samples();
  let nextSlot = 0;
  let records = 0;
  let stopped = false;
  let commitsAtStart = 0;
  let bytesAtStart = 0;
  let commitsAtEnd = 0;
  let bytesAtEnd = 0;
  let cpuAtStart = process.cpuUsage();
  let cpu = 0;
  const start = now();
  const measureFrom = start + warmupMs;
  const measureTo = measureFrom + durationMs;
  const timers = [
    setTimeout(() => {
      commitsAtStart = storage.durableCommits;
      bytesAtStart = storage.appendedBytes;
      cpuAtStart = process.cpuUsage();
    }, warmupMs),
    setTimeout(() => {
      commitsAtEnd = storage.durableCommits;
      bytesAtEnd = storage.appendedBytes;
      cpu = cpuSince(cpuAtStart);
      stopped = true;
    }, warmupMs + durationMs),
  ];
  const appender = async (): Promise<void> => {
    while (!stopped) {
      const batch = batchFor(nextSlot);
      nextSlot += 1;
      const begin = now();
      await storage.persist(batch);
      const end = now();
      if (begin >= measureFrom && end <= measureTo) {
        samples.push((end - begin) * 1000);
        records += 1;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: appenders }, appender));
  } finally {
    for (const timer of timers) clearTimeout(timer);
  }
  const commits = commitsAtEnd - commitsAtStart;
  return {
    perSecond: records / (durationMs / 1000),
    p50: samples.percentile(50),
    p99: samples.percentile(99),
    perCommit: commits > 0 ? records / commits : Number.NaN,
    bytesPerOp: records > 0 ? (bytesAtEnd - bytesAtStart) / records : Number.NaN,
    cpuPerOp: records > 0 ? cpu / records : Number.NaN,
  };
}

/** The command line both append benchmarks take: `[--dir D] [--duration s] [--warmup s] [--reps n] [--appenders n,n,...]`. */
export function benchOptions(): { dir: string | undefined; durationMs: number; warmupMs: number; reps: number; appenders: number[] } {
  const { values } = parseArgs({
    options: {
      dir: { type: "string" },
      duration: { type: "string", default: "2" },
      warmup: { type: "string", default: "0.5" },
      reps: { type: "string", default: "3" },
      appenders: { type: "string", default: "1,16,256" },
    },
  });
  const options = {
    dir: values.dir,
    durationMs: Number(values.duration) * 1000,
    warmupMs: Number(values.warmup) * 1000,
    reps: Number(values.reps),
    appenders: (values.appenders ?? "").split(",").map(Number),
  };
  if (![options.durationMs, options.warmupMs, options.reps].every(Number.isFinite) || options.appenders.some((n) => !(n >= 1))) {
    throw new Error("bad arguments: --duration/--warmup in seconds, --reps n, --appenders n,n,...");
  }
  return options;
}
