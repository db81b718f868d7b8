/**
 * Crash test with real processes and SIGKILL.
 *
 * A child process (crash-child.ts, bundled once with esbuild and run with
 * plain node) opens a FileStorage, prints what it recovered, then appends
 * batches with many persists in flight (group commit), printing an intent
 * line before each `persist` and an ack line after it resolved. The parent
 * kills it with SIGKILL at a random moment and restarts it, hundreds of
 * times. After every restart it checks, against everything the children ever
 * announced and acknowledged:
 *
 * - the log opened (the child printed its recovered state, no error);
 * - every acknowledged record is present, at its acknowledged ballot or a
 *   later one, with the value that is a pure function of (seed, slot); every
 *   acknowledged chosen mark is chosen; the acknowledged promise and log
 *   start are kept, and the snapshot covers the compacted log;
 * - nothing is invented: each record read back was announced, at an
 *   announced ballot, with exactly the expected value; a slot is reported
 *   chosen only if it was announced chosen (directly or by a mark);
 * - nothing goes backwards: what one restart recovered, the next one has too.
 *
 * The kill schedule comes from a seeded PRNG: the seed is printed, is part of
 * every failure message, and `SYNOD_CRASH_SEED=<seed>` replays the same
 * schedule (the kill points are times, so the bytes on disk at each kill vary
 * with machine speed; the schedule and the child's batches do not).
 * `SYNOD_CRASH_RUNS` changes the number of restarts (default 200).
 */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { SeededRandom, collectChunks, snapshotData as dataOf } from "@synod/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileStorage } from "../src/index.js";
import { CRASH_NODE, type ChildLine, bytesDigest, expectedValue, snapshotData, valueDigest } from "./crash-model.js";

const SEED = process.env.SYNOD_CRASH_SEED !== undefined ? Number(process.env.SYNOD_CRASH_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
/** Restarts in all (each one killed by SIGKILL, then checked). */
const RUNS = Number(process.env.SYNOD_CRASH_RUNS ?? 200);
/**
 * Independent data directories crashed side by side, each with its own
 * history. A node start costs ~200 ms on a small machine (node itself ~110 ms),
 * so two lanes use both cores and halve the wall time.
 */
const LANES = 2;
/** A hang guard for the whole loop: failing is better than the test timeout. */
const BUDGET_MS = Number(process.env.SYNOD_CRASH_BUDGET_MS ?? 200_000);
/** Small segments so that rolls and compaction happen often. */
const SEGMENT_BYTES = 32 * 1024;
/** Runs killed at a random time after spawn (maybe while recovering), instead of 5–60 ms after ready. */
const EARLY_KILL_CHANCE = 0.1;
const READY_TIMEOUT_MS = 15_000;

const here = dirname(fileURLToPath(import.meta.url));
const childSource = join(here, "crash-child.ts");
const buildDirectory = join(here, ".build");
const childBundle = join(buildDirectory, "crash-child.mjs");

/**
 * The child needs no environment; an inherited NODE_EXTRA_CA_CERTS alone (set
 * on some machines) makes every node start load a CA bundle, ~80 ms.
 */
const CHILD_ENV: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? "" };

type Child = ChildProcessByStdio<null, Readable, Readable>;
/** Every child this file started and that may still run: killed by PID in afterAll. */
const live = new Set<Child>();
const directories: string[] = [];

const tag = (lane: number, run: number): string => `seed ${SEED} (replay: SYNOD_CRASH_SEED=${SEED}) lane ${lane} run ${run}`;

async function loadEsbuild(): Promise<typeof import("esbuild")> {
  try {
    return await import("esbuild");
  } catch {
    // Not hoisted where this package can see it: use the one tsx depends on.
    const require = createRequire(createRequire(import.meta.url).resolve("tsx/package.json"));
    return require("esbuild") as typeof import("esbuild");
  }
}

beforeAll(async () => {
  console.log(`crash test: seed ${SEED} (replay with SYNOD_CRASH_SEED=${SEED}), ${RUNS} restarts over ${LANES} lanes`);
  mkdirSync(buildDirectory, { recursive: true });
  const { build } = await loadEsbuild();
  await build({
    entryPoints: [childSource],
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    external: ["@node-rs/crc32"],
    conditions: ["@synod/source"],
    outfile: childBundle,
    logLevel: "warning",
  });
}, 60_000);

afterAll(() => {
  for (const child of live) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
  }
  live.clear();
  for (const directory of directories) rmSync(directory, { recursive: true, force: true });
});

type StateLine = Extract<ChildLine, { t: "state" }>;
type IntentLine = Extract<ChildLine, { t: "i" }>;

/** Everything the children of one data directory ever announced and had acknowledged, across restarts. */
class History {
  /** slot → ballot rounds it was announced at. */
  readonly issuedBallots = new Map<number, Set<number>>();
  /** Slots announced chosen, by a chosen record or a mark. */
  readonly issuedChosen = new Set<number>();
  readonly issuedPromises = new Set<number>([0]);
  readonly issuedTruncations = new Set<number>([0]);
  readonly issuedSnapshots = new Set<number>();
  /** slot → highest ballot round acknowledged for it. */
  readonly ackedRecords = new Map<number, number>();
  readonly ackedChosen = new Set<number>();
  ackedPromise = 0;
  ackedTruncation = 0;
  ackedSnapshot = -1;
  /** What the previous restart recovered: durable, so every later restart must have it too. */
  previous: StateLine | undefined;
  /** This child's intents by id (ids restart at 0 in each child). */
  intents = new Map<number, IntentLine>();
  acks = 0;

  constructor(readonly seed: number) {}

  onIntent(intent: IntentLine): void {
    this.intents.set(intent.n, intent);
    for (const slot of intent.r) {
      let ballots = this.issuedBallots.get(slot);
      if (ballots === undefined) this.issuedBallots.set(slot, (ballots = new Set()));
      ballots.add(intent.b);
    }
    for (const slot of [...intent.c, ...intent.m]) this.issuedChosen.add(slot);
    if (intent.p !== null) this.issuedPromises.add(intent.p);
    if (intent.tb !== null) this.issuedTruncations.add(intent.tb);
  }

  onAck(id: number): string | undefined {
    const intent = this.intents.get(id);
    if (intent === undefined) return `ack of unknown persist ${id}`;
    this.intents.delete(id);
    this.acks += 1;
    for (const slot of intent.r) this.ackedRecords.set(slot, Math.max(intent.b, this.ackedRecords.get(slot) ?? 0));
    for (const slot of [...intent.c, ...intent.m]) this.ackedChosen.add(slot);
    if (intent.p !== null) this.ackedPromise = Math.max(this.ackedPromise, intent.p);
    if (intent.tb !== null) this.ackedTruncation = Math.max(this.ackedTruncation, intent.tb);
    return undefined;
  }

  /** Checks a recovered state; returns what is wrong (empty when all holds). */
  check(state: StateLine): string[] {
    const problems: string[] = [];
    const { logStart } = state;
    const bySlot = new Map<number, StateLine["records"][number]>();
    for (const [index, record] of state.records.entries()) {
      const [slot, round, node, digest, chosen] = record;
      bySlot.set(slot, record);
      if (index > 0 && slot !== (state.records[index - 1]?.[0] ?? Number.NaN) + 1) problems.push(`records not contiguous at slot ${slot}`);
      if (index === 0 && slot !== logStart) problems.push(`first record is slot ${slot}, log start is ${logStart}`);
      const ballots = this.issuedBallots.get(slot);
      if (ballots === undefined) {
        problems.push(`slot ${slot} was never written but was recovered`);
        continue;
      }
      if (!ballots.has(round) || node !== CRASH_NODE) problems.push(`slot ${slot} has ballot ${round}.${node}, never written there (written at ${[...ballots].join(",")})`);
      if (digest !== valueDigest(expectedValue(this.seed, slot))) problems.push(`slot ${slot} holds a wrong value (digest ${digest})`);
      if (chosen === 1 && !this.issuedChosen.has(slot)) problems.push(`slot ${slot} is reported chosen but was never marked chosen`);
    }
    for (const [slot, round] of this.ackedRecords) {
      if (slot < logStart) continue;
      const record = bySlot.get(slot);
      if (record === undefined) problems.push(`acknowledged slot ${slot} is missing`);
      else if (record[1] < round) problems.push(`acknowledged slot ${slot} at ballot ${round} came back at ballot ${record[1]}`);
    }
    for (const slot of this.ackedChosen) {
      if (slot >= logStart && bySlot.get(slot)?.[4] !== 1) problems.push(`acknowledged chosen mark of slot ${slot} is lost`);
    }
    const previous = this.previous;
    if (previous !== undefined) {
      for (const [slot, round, , , chosen] of previous.records) {
        if (slot < logStart) continue;
        const record = bySlot.get(slot);
        if (record === undefined) problems.push(`slot ${slot}, recovered by the previous run, is gone`);
        else if (record[1] < round || (chosen === 1 && record[4] !== 1)) {
          problems.push(`slot ${slot} went back from ${JSON.stringify([slot, round, chosen])} (previous recovery) to ${JSON.stringify(record)}`);
        }
      }
      if (state.promised.round < previous.promised.round) problems.push(`promise went back from ${previous.promised.round} to ${state.promised.round}`);
      if (logStart < previous.logStart) problems.push(`log start went back from ${previous.logStart} to ${logStart}`);
      if (previous.snapshot !== null && (state.snapshot?.slot ?? -1) < previous.snapshot.slot) problems.push("the snapshot went back");
    }
    const promised = state.promised;
    if (promised.round < this.ackedPromise) problems.push(`promise ${promised.round} is below the acknowledged ${this.ackedPromise}`);
    if (!this.issuedPromises.has(promised.round) || promised.node !== (promised.round === 0 ? "" : CRASH_NODE)) {
      problems.push(`promise ${promised.round}.${promised.node} was never written`);
    }
    if (logStart < this.ackedTruncation) problems.push(`log start ${logStart} is below the acknowledged truncation ${this.ackedTruncation}`);
    if (!this.issuedTruncations.has(logStart)) problems.push(`log start ${logStart} was never written`);
    const snapshot = state.snapshot;
    if (logStart > 0 && (snapshot === null || snapshot.slot < logStart - 1)) problems.push(`log start ${logStart} but the snapshot ends at ${snapshot?.slot ?? "none"}`);
    if (snapshot !== null) {
      if (!this.issuedSnapshots.has(snapshot.slot)) problems.push(`snapshot ${snapshot.slot} was never written`);
      if (snapshot.digest !== bytesDigest(snapshotData(this.seed, snapshot.slot)) || !snapshot.handleOk) problems.push(`snapshot ${snapshot.slot} holds wrong data`);
    }
    if ((snapshot?.slot ?? -1) < this.ackedSnapshot) problems.push(`the acknowledged snapshot ${this.ackedSnapshot} is lost`);
    if (state.tornTail !== null && !(state.tornTail.droppedBytes > 0 && state.tornTail.offset >= 0)) problems.push(`odd torn tail ${JSON.stringify(state.tornTail)}`);
    this.previous = state;
    return problems;
  }
}

interface Stats {
  runs: number;
  earlyKills: number;
  killedBeforeReady: number;
  tornTails: number;
  removedFiles: number;
  maxSegments: number;
  acks: number;
}

interface RunOutcome {
  readonly state: StateLine | undefined;
  readonly problems: readonly string[];
}

/** Starts a child on `directory`, kills it by PID on the schedule, and feeds every line it printed to `history`. */
function runChild(
  directory: string,
  history: History,
  childSeed: number,
  expectExisting: boolean,
  kill: { readonly early: boolean; readonly delayMs: number },
): Promise<RunOutcome> {
  return new Promise<RunOutcome>((resolve) => {
    const child: Child = spawn(
      process.execPath,
      [childBundle, directory, String(history.seed), String(childSeed), String(SEGMENT_BYTES), expectExisting ? "1" : "0"],
      { stdio: ["ignore", "pipe", "pipe"], env: CHILD_ENV },
    );
    live.add(child);
    const problems: string[] = [];
    let state: StateLine | undefined;
    let killed = false;
    let pending = "";
    let stderr = "";
    const timers: NodeJS.Timeout[] = [];
    const killNow = (): void => {
      if (killed || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      killed = true;
      process.kill(child.pid, "SIGKILL");
    };
    if (kill.early) timers.push(setTimeout(killNow, kill.delayMs));
    timers.push(
      setTimeout(() => {
        if (state === undefined) problems.push(`no recovered state within ${READY_TIMEOUT_MS} ms`);
        killNow();
      }, READY_TIMEOUT_MS),
    );
    const onLine = (text: string): void => {
      let line: ChildLine;
      try {
        line = JSON.parse(text) as ChildLine;
      } catch {
        problems.push(`unparsable line from the child: ${text.slice(0, 200)}`);
        return;
      }
      switch (line.t) {
        case "state":
          state = line;
          history.intents = new Map();
          problems.push(...history.check(line));
          if (!kill.early) timers.push(setTimeout(killNow, kill.delayMs));
          break;
        case "i":
          history.onIntent(line);
          break;
        case "a": {
          const problem = history.onAck(line.n);
          if (problem !== undefined) problems.push(problem);
          break;
        }
        case "si":
          history.issuedSnapshots.add(line.slot);
          break;
        case "sa":
          history.ackedSnapshot = Math.max(history.ackedSnapshot, line.slot);
          break;
        case "error":
          problems.push(`the child failed: ${line.name}: ${line.message}`);
          break;
      }
    };
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      pending += chunk;
      let newline = pending.indexOf("\n");
      while (newline !== -1) {
        onLine(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
        newline = pending.indexOf("\n");
      }
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      if (stderr.length < 4000) stderr += chunk;
    });
    child.on("close", (code, signal) => {
      for (const timer of timers) clearTimeout(timer);
      live.delete(child);
      // A line cut by the kill was never acknowledged: it is ignored.
      if (!killed || signal !== "SIGKILL") problems.push(`the child exited by itself (code ${code}, signal ${signal}) ${stderr.slice(0, 2000)}`);
      resolve({ state, problems });
    });
  });
}

/** One data directory crashed `runs` times in a row. */
async function runLane(lane: number, runs: number, random: SeededRandom, deadline: number, stats: Stats): Promise<void> {
  const directory = mkdtempSync(join(tmpdir(), `synod-crash-${lane}-`));
  directories.push(directory);
  const history = new History(random.next32());
  let opened = false;
  for (let run = 0; run < runs; run += 1) {
    if (Date.now() > deadline) throw new Error(`${tag(lane, run)}: the time budget of ${BUDGET_MS} ms ran out after ${run} restarts`);
    const early = random.chance(EARLY_KILL_CHANCE);
    const delayMs = early ? random.integer(250) : 5 + random.integer(56);
    const outcome = await runChild(directory, history, random.next32(), opened, { early, delayMs });
    stats.runs += 1;
    if (early) stats.earlyKills += 1;
    if (outcome.state === undefined) stats.killedBeforeReady += 1;
    else {
      opened = true;
      if (outcome.state.tornTail !== null) stats.tornTails += 1;
      stats.removedFiles += outcome.state.removed.length;
      stats.maxSegments = Math.max(stats.maxSegments, outcome.state.segments);
    }
    if (outcome.problems.length > 0) {
      throw new Error(`${tag(lane, run)} (${early ? `early kill at ${delayMs} ms` : `kill ${delayMs} ms after ready`}): ${outcome.problems.slice(0, 12).join("; ")}`);
    }
  }
  // Last, recover in this process and check once more: the log opens and holds everything acknowledged.
  const storage = await FileStorage.open(directory, { nodeId: CRASH_NODE, expectExisting: opened, segmentBytes: SEGMENT_BYTES });
  try {
    const state = await storage.load();
    const problems = history.check({
      t: "state",
      records: state.records.map((record) => [record.slot, record.ballot.round, record.ballot.node, valueDigest(record.value), record.chosen ? 1 : 0] as const),
      promised: state.promised,
      logStart: state.logStart,
      snapshot:
        state.snapshot === undefined
          ? null
          : { slot: state.snapshot.handle.slot, digest: bytesDigest(await collectChunks(dataOf(state.snapshot))), handleOk: state.snapshot.handle.time === state.snapshot.handle.slot },
      tornTail: null,
      removed: [],
      segments: storage.recovery.segments,
      commits: storage.recovery.commits,
    });
    expect(problems, `${tag(lane, runs)} (final in-process recovery)`).toEqual([]);
  } finally {
    await storage.close();
  }
  stats.acks += history.acks;
}

describe("FileStorage under SIGKILL", () => {
  it(`keeps every acknowledged write and invents nothing across ${RUNS} kills and restarts`, async () => {
    const started = Date.now();
    const master = new SeededRandom(SEED);
    const stats: Stats = { runs: 0, earlyKills: 0, killedBeforeReady: 0, tornTails: 0, removedFiles: 0, maxSegments: 0, acks: 0 };
    const perLane = Math.ceil(RUNS / LANES);
    const lanes = Array.from({ length: LANES }, (_, lane) => runLane(lane, perLane, master.fork(), started + BUDGET_MS, stats));
    const results = await Promise.allSettled(lanes);
    const failures = results.filter((result): result is PromiseRejectedResult => result.status === "rejected").map((result) => String(result.reason));
    expect(failures, `crash test failed with seed ${SEED} (replay: SYNOD_CRASH_SEED=${SEED})`).toEqual([]);
    expect(stats.runs, `seed ${SEED}`).toBeGreaterThanOrEqual(RUNS);
    // The children did real work between kills (else the test proves nothing).
    expect(stats.acks, `seed ${SEED}`).toBeGreaterThan(RUNS * 10);
    console.log(
      `crash test seed ${SEED}: ${stats.runs} kills in ${((Date.now() - started) / 1000).toFixed(1)} s, ${stats.acks} acknowledged persists, ` +
        `${stats.earlyKills} early kills (${stats.killedBeforeReady} before recovery finished), ${stats.tornTails} torn tails cut, ` +
        `${stats.removedFiles} leftover files removed, up to ${stats.maxSegments} segments`,
    );
  });
});
