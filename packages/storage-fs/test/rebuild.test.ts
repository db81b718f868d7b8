/**
 * Starting over: `onCorruption: "rebuild"` at open, and `reset()`. The rules
 * under test: a corrupt or wiped directory opens empty and rebuilding (never
 * with part of its old state), its files kept in a `damaged-*` folder; a
 * directory of another replica is still refused; without the option nothing
 * changes; and the rebuilding mark is durable before anything old is
 * removed, so a crash (or a failure) at any step restarts the replica with
 * its old state or empty and rebuilding, never as a new replica.
 */
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { type PersistBatch, type SlotRecord, type StoredState, SeededRandom, ZERO_BALLOT } from "@synod/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileStorage, StorageFailedError, StorageIdentityError, StorageWipedError } from "../src/index.js";
import { METADATA_FILE, readMetadata } from "../src/metadata.js";
import { markRebuilding } from "../src/rebuild.js";
import { segmentNumber } from "../src/segments.js";
import { type BuiltLog, FrameKind, NODE, ScratchArea, buildLog, expectCorruption, framesOf, segmentNames } from "./log-fixture.js";

const SEED = 20_250_612;
const SEGMENT_BYTES = 2048;
const QUARANTINE = /^damaged-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}Z(-\d+)?$/;

const scratch = new ScratchArea("synod-rebuild-");

/** ≥ 3 live segments, a snapshot and a compaction behind them. */
let log: BuiltLog;

beforeAll(async () => {
  log = await buildLog(join(scratch.root, "main"), { segmentBytes: SEGMENT_BYTES, commits: 20, compactAt: 9, lastSegmentCommits: 3, seed: SEED, random: new SeededRandom(SEED) });
  expect(segmentNames(log.directory).length).toBeGreaterThanOrEqual(3);
  expect(readdirSync(log.directory).some((name) => name.endsWith(".snap"))).toBe(true);
});

afterAll(() => {
  scratch.remove();
});

const open = (directory: string, options: { expectExisting?: boolean; onCorruption?: "throw" | "rebuild"; nodeId?: string } = {}): Promise<FileStorage> =>
  FileStorage.open(directory, { nodeId: NODE, expectExisting: true, segmentBytes: SEGMENT_BYTES, ...options });

const record = (slot: number, round: number): SlotRecord => ({ slot, ballot: { round, node: NODE }, value: { type: "noop" }, chosen: true });
const batch = (parts: Partial<PersistBatch>): PersistBatch => ({ promised: undefined, records: [], chosen: [], truncateBefore: undefined, ...parts });

function expectEmptyAndRebuilding(state: StoredState, at = ""): void {
  expect({ promised: state.promised, records: state.records, logStart: state.logStart, snapshot: state.snapshot, incoming: state.incoming, rebuilding: state.rebuilding }, at).toEqual({
    promised: ZERO_BALLOT,
    records: [],
    logStart: 0,
    snapshot: undefined,
    incoming: undefined,
    rebuilding: true,
  });
}

async function loadAndClose(storage: FileStorage): Promise<StoredState> {
  try {
    return await storage.load();
  } finally {
    await storage.close();
  }
}

const quarantines = (directory: string): string[] => readdirSync(directory).filter((name) => name.startsWith("damaged-"));

/** Flips one bit in the middle of a record frame of a middle segment; returns the segment's path and the frame's start. */
function flipMiddleRecord(directory: string): { path: string; frameStart: number } {
  const name = segmentNames(directory)[1] as string;
  const path = join(directory, name);
  const frame = framesOf(readFileSync(path)).find((candidate) => candidate.kind === FrameKind.record);
  if (frame === undefined) throw new Error("fixture: no record in the middle segment");
  const position = Math.floor((frame.start + frame.end) / 2);
  const handle = openSync(path, "r+");
  try {
    writeSync(handle, Buffer.of((readFileSync(path)[position] as number) ^ 0x04), 0, 1, position);
  } finally {
    closeSync(handle);
  }
  return { path, frameStart: frame.start };
}

describe('onCorruption: "rebuild"', () => {
  it("a bit flipped in a middle segment: refused by default; with rebuild, opens empty and rebuilding, the old files in damaged-*/", async () => {
    const directory = scratch.copy(log);
    const before = readdirSync(directory).sort();
    const { path, frameStart } = flipMiddleRecord(directory);
    const damagedBytes = readFileSync(path);
    const oldIncarnation = (await readMetadata(directory))?.incarnation as number;

    const refused = await expectCorruption(open(directory), path);
    expect(refused.offset).toBe(frameStart);
    expect(readdirSync(directory).sort()).toEqual(before);

    const storage = await open(directory, { onCorruption: "rebuild" });
    const rebuild = storage.recovery.rebuild;
    expect(rebuild).toMatchObject({ file: path, offset: frameStart, reason: refused.reason });
    const [folder] = quarantines(directory);
    expect(folder).toMatch(QUARANTINE);
    expect(rebuild?.movedTo).toBe(join(directory, folder as string));
    expect(readdirSync(rebuild?.movedTo as string).sort()).toEqual(before);
    expect(readFileSync(join(rebuild?.movedTo as string, segmentNames(log.directory)[1] as string))).toEqual(damagedBytes);
    expect(readdirSync(directory).filter((name) => name !== folder).length).toBe(2); // meta and the new, empty segment
    expect(storage.identity).toEqual({ nodeId: NODE, incarnation: oldIncarnation + 1 });
    expectEmptyAndRebuilding(await storage.load());
    await storage.persist(batch({ promised: { round: 7, node: "b" }, records: [record(0, 7)] }));
    await storage.close();

    // The damaged-* folder is not part of the storage: the next open (without the option) loads normally, still rebuilding.
    const again = await open(directory);
    expect(again.recovery.rebuild).toBeUndefined();
    const state = await again.load();
    expect(state.rebuilding).toBe(true);
    expect(state.records).toEqual([record(0, 7)]);
    await again.persist(batch({ rebuilt: true }));
    await again.close();
    const rebuilt = await loadAndClose(await open(directory));
    expect(rebuilt.rebuilding ?? false).toBe(false);
    expect(rebuilt.promised).toEqual({ round: 7, node: "b" });
    expect(quarantines(directory)).toEqual([folder]);
  });

  it("a wiped directory: StorageWipedError by default; with rebuild, opens rebuilding with nothing moved", async () => {
    const directory = scratch.path();
    mkdirSync(directory);
    await expect(open(directory)).rejects.toBeInstanceOf(StorageWipedError);
    const storage = await open(directory, { onCorruption: "rebuild" });
    expect(storage.recovery.rebuild).toEqual({ reason: expect.stringMatching(/empty/), file: directory, offset: 0, movedTo: undefined });
    expectEmptyAndRebuilding(await loadAndClose(storage));
    expect(quarantines(directory)).toEqual([]);
    expectEmptyAndRebuilding(await loadAndClose(await open(directory)));
  });

  it("a directory holding only damaged-* folders is empty: wiped when the replica was a member, new otherwise", async () => {
    const directory = scratch.path();
    mkdirSync(join(directory, "damaged-2020-01-01T00-00-00.000Z"), { recursive: true });
    writeFileSync(join(directory, "damaged-2020-01-01T00-00-00.000Z", METADATA_FILE), "old");
    await expect(open(directory)).rejects.toBeInstanceOf(StorageWipedError);
    const fresh = await open(directory, { expectExisting: false });
    expect(fresh.recovery.fresh).toBe(true);
    expect((await loadAndClose(fresh)).rebuilding ?? false).toBe(false);
  });

  it("metadata missing while segments exist: with rebuild, every file is moved, nothing deleted", async () => {
    const directory = scratch.copy(log);
    rmSync(join(directory, METADATA_FILE));
    const before = readdirSync(directory).sort();
    const storage = await open(directory, { onCorruption: "rebuild" });
    expect(storage.recovery.rebuild?.reason).toMatch(/metadata missing/);
    expect(readdirSync(storage.recovery.rebuild?.movedTo as string).sort()).toEqual(before);
    expectEmptyAndRebuilding(await loadAndClose(storage));
  });

  it("another replica's directory is StorageIdentityError even with rebuild, and nothing is moved", async () => {
    const directory = scratch.copy(log);
    const before = readdirSync(directory).sort();
    await expect(open(directory, { nodeId: "someone-else", onCorruption: "rebuild" })).rejects.toBeInstanceOf(StorageIdentityError);
    expect(readdirSync(directory).sort()).toEqual(before);
  });

  it("a crash during a rebuild: before the mark, the directory is still damaged and rebuilt again; after it, it opens rebuilding and empty", async () => {
    // Before the mark: the quarantine folder and its copy of the metadata exist, nothing else changed.
    let directory = scratch.copy(log);
    const { path } = flipMiddleRecord(directory);
    mkdirSync(join(directory, "damaged-2020-01-01T00-00-00.000Z"));
    writeFileSync(join(directory, "damaged-2020-01-01T00-00-00.000Z", METADATA_FILE), readFileSync(join(directory, METADATA_FILE)));
    await expectCorruption(open(directory), path);
    const storage = await open(directory, { onCorruption: "rebuild" });
    expect(quarantines(directory)).toHaveLength(2);
    expectEmptyAndRebuilding(await loadAndClose(storage));

    // After the mark, before the old files were moved: they are leftovers, removed at open.
    directory = scratch.copy(log);
    flipMiddleRecord(directory);
    const past = Math.max(...segmentNames(directory).map((name) => segmentNumber(name) as number)) + 1;
    await markRebuilding(directory, { nodeId: NODE, incarnation: 9 }, past);
    const reopened = await open(directory);
    expect(reopened.recovery.removedFiles.some((name) => name.endsWith(".snap"))).toBe(true);
    expectEmptyAndRebuilding(await loadAndClose(reopened));
    expect(readdirSync(directory).sort()).toEqual([METADATA_FILE, segmentNames(directory)[0] as string]);
  });
});

describe("reset()", () => {
  it("forgets the log, snapshot and incoming transfer, durably; writes after it work and survive a reopen", async () => {
    const directory = scratch.copy(log);
    const storage = await open(directory);
    const incarnation = storage.identity.incarnation;
    const receiving = await storage.receiveSnapshot({ slot: 99, checksum: 5, size: 100 });
    await receiving.append(new Uint8Array(10));
    await storage.reset();
    expectEmptyAndRebuilding(await storage.load());
    expect(storage.identity.incarnation).toBe(incarnation + 1);
    // Only the metadata and one empty segment are left.
    expect(readdirSync(directory).sort()).toEqual([METADATA_FILE, segmentNames(directory)[0] as string]);
    expect((await readMetadata(directory))?.rebuilding).toBe(true);
    await storage.close();
    const reopened = await open(directory);
    expectEmptyAndRebuilding(await reopened.load());
    // Enough writes to roll segments and compact on the empty log.
    for (let slot = 0; slot < 60; slot += 1) await reopened.persist(batch({ records: [{ ...record(slot, 3), value: { type: "batch", time: slot, commands: [{ session: "s", seq: slot, body: { type: "op", op: "x".repeat(100) } }] } }] }));
    await reopened.writeSnapshot({ slot: 49, time: 49, configs: [{ id: -1, voters: [NODE], learners: [] }], sessions: [] }, [new Uint8Array([1, 2])]);
    await reopened.persist(batch({ truncateBefore: 50, rebuilt: true }));
    await reopened.close();
    const state = await loadAndClose(await open(directory));
    expect(state.rebuilding ?? false).toBe(false);
    expect(state.logStart).toBe(50);
    expect(state.records.map((entry) => entry.slot)).toEqual([50, 51, 52, 53, 54, 55, 56, 57, 58, 59]);
    expect(state.snapshot?.handle.slot).toBe(49);
  });

  it("persists issued during a reset land after it, those before it before it", async () => {
    const directory = scratch.path();
    const storage = await open(directory, { expectExisting: false });
    const early = storage.persist(batch({ records: [record(0, 1)] }));
    const resetting = storage.reset();
    const late = storage.persist(batch({ records: [record(5, 2)] }));
    await Promise.all([early, resetting, late]);
    const state = await loadAndClose(storage);
    expect(state.records).toEqual([record(5, 2)]);
    expect(state.rebuilding).toBe(true);
    expect((await loadAndClose(await open(directory))).records).toEqual([record(5, 2)]);
  });

  it("makes its mark durable before it removes anything: a reset that fails midway fails the storage, and a restart is rebuilding and empty", async () => {
    const directory = scratch.copy(log);
    const storage = await open(directory);
    // A closed segment that cannot be removed (a directory in its place, made after open read it).
    const stuck = segmentNames(directory)[0] as string;
    rmSync(join(directory, stuck));
    mkdirSync(join(directory, stuck));
    writeFileSync(join(directory, stuck, "x"), "x");
    await expect(storage.reset()).rejects.toBeInstanceOf(StorageFailedError);
    await expect(storage.persist(batch({ records: [record(0, 1)] }))).rejects.toBeInstanceOf(StorageFailedError);
    await storage.close();
    const metadata = await readMetadata(directory);
    expect(metadata).toMatchObject({ rebuilding: true, discardSnapshots: true, promised: ZERO_BALLOT, logStart: 0 });
    // The snapshot was not removed yet; the restart removes it (and the old segments) instead of believing it.
    expect(readdirSync(directory).some((name) => name.endsWith(".snap"))).toBe(true);
    rmSync(join(directory, stuck), { recursive: true });
    const reopened = await open(directory);
    expectEmptyAndRebuilding(await loadAndClose(reopened));
    expect(readdirSync(directory).sort()).toEqual([METADATA_FILE, segmentNames(directory)[0] as string]);
    expect((await readMetadata(directory))?.discardSnapshots).toBeUndefined();
  });
});
