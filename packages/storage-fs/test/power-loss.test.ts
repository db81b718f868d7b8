/**
 * Simulated power loss: the page cache is lost, so whatever was written after
 * the last fsync may be gone, cut anywhere, or torn (sectors of zeros or
 * garbage). FileStorage writes one group commit at a time and fdatasyncs it
 * before writing the next, so at any instant at most one commit is unsynced:
 * the one being written. Each iteration:
 *
 * 1. reopen, and check that the state is exactly the model (every
 *    acknowledged commit, plus the unsynced one only if it survived whole);
 * 2. make a few acknowledged group commits (bursts of concurrent persists,
 *    sometimes a new promise, sometimes a snapshot and a truncation);
 * 3. write one more group commit (the unsynced one: records and chosen marks
 *    only, since a promise or truncation is recorded in the metadata after
 *    the fsync) and "lose power": cut the active segment anywhere between its
 *    size at the last acknowledged commit and its current size, and sometimes
 *    overwrite part of that unsynced tail with zeros or garbage. When the
 *    unsynced commit rolled the segment, its fsync had returned (the roll
 *    follows it) and the cut falls inside the roll: the new, empty segment
 *    may or may not exist, and the metadata may still be the old one.
 *
 * Seeded: SYNOD_POWER_SEED replays.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BufferedSnapshot, DurableImage, type PersistBatch, SeededRandom, ZERO_BALLOT } from "@synod/core";
import { afterAll, describe, expect, it } from "vitest";
import { FileStorage } from "../src/index.js";
import { BatchMaker, NODE, activeSegment, comparable, segmentNames } from "./log-fixture.js";

const SEED = process.env.SYNOD_POWER_SEED !== undefined ? Number(process.env.SYNOD_POWER_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
const ITERATIONS = Number(process.env.SYNOD_POWER_ITERATIONS ?? 300);
const SEGMENT_BYTES = 4096;

const root = mkdtempSync(join(tmpdir(), "synod-power-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Persists `batches` together (one or two group commits) and waits for all. */
async function persistAll(storage: FileStorage, batches: readonly PersistBatch[]): Promise<void> {
  await Promise.all(batches.map((batch) => storage.persist(batch)));
}

describe("FileStorage after a simulated power loss", () => {
  it(`keeps every acknowledged commit through ${ITERATIONS} power losses (seed ${SEED})`, async () => {
    console.log(`power-loss test: seed ${SEED} (replay with SYNOD_POWER_SEED=${SEED})`);
    const random = new SeededRandom(SEED);
    const directory = join(root, "log");
    const maker = new BatchMaker(SEED, random);
    /** What must be recovered: every acknowledged batch (and an unsynced one that survived whole). */
    const model = new DurableImage(ZERO_BALLOT);
    const stats = { survived: 0, lost: 0, torn: 0, garbage: 0, lostDirectoryEntries: 0, compactions: 0, maxSegments: 0 };
    let expectedTorn: { file: string; offset: number; droppedBytes: number } | undefined;
    for (let iteration = 0; iteration < ITERATIONS; iteration += 1) {
      const at = `seed ${SEED} (replay: SYNOD_POWER_SEED=${SEED}), iteration ${iteration}`;
      const storage = await FileStorage.open(directory, { nodeId: NODE, expectExisting: iteration > 0, segmentBytes: SEGMENT_BYTES });
      let closed = false;
      try {
        expect(comparable(await storage.load()), at).toEqual(comparable(model.toStoredState()));
        if (expectedTorn === undefined) expect(storage.recovery.tornTail, at).toBeUndefined();
        else expect(storage.recovery.tornTail, at).toMatchObject(expectedTorn);
        stats.maxSegments = Math.max(stats.maxSegments, storage.recovery.segments);

        // Acknowledged commits.
        const acknowledged = 1 + random.integer(3);
        for (let commit = 0; commit < acknowledged; commit += 1) {
          const batches: PersistBatch[] = [];
          const count = 1 + random.integer(4);
          for (let index = 0; index < count; index += 1) batches.push(maker.batch({ promise: random.integer(10) === 0 }));
          if (random.integer(12) === 0 && maker.nextSlot > 30) {
            // Snapshot first, then truncate below it.
            const slot = maker.nextSlot - 10;
            const snapshot = { handle: { slot, time: slot, configs: [{ id: -1, voters: [NODE], learners: [] }], sessions: [] }, data: Uint8Array.of(slot & 0xff, 42) };
            await storage.writeSnapshot(snapshot.handle, [snapshot.data]);
            model.installSnapshot(new BufferedSnapshot(snapshot.handle, snapshot.data));
            batches.push({ promised: undefined, records: [], chosen: [], truncateBefore: slot + 1 });
            maker.truncated(slot + 1);
            stats.compactions += 1;
          }
          await persistAll(storage, batches);
          for (const batch of batches) model.applyBatch(batch);
        }

        // The unsynced commit, then the power cut. A burst into an idle storage
        // may become two group commits (the first batch alone): the earlier one
        // was fsynced before the last was written, so only the last is unsynced.
        const unsynced: PersistBatch[] = [];
        const metadataBefore = readFileSync(join(directory, "meta"));
        const count = 1 + random.integer(3);
        for (let index = 0; index < count; index += 1) unsynced.push(maker.batch());
        await persistAll(storage, unsynced);
        await storage.close();
        closed = true;
        const segment = activeSegment(directory);
        const path = join(directory, segment);
        const written = readFileSync(path);
        if (written.length === 0) {
          // The last commit rolled the segment, which happens after its fsync: all of it is durable. A cut
          // inside the roll (file created and synced, then the metadata naming it) leaves the old metadata,
          // with or without the new empty file; a cut after it leaves both.
          for (const batch of unsynced) model.applyBatch(batch);
          stats.survived += 1;
          expectedTorn = undefined;
          const roll = random.integer(3);
          if (roll < 2) {
            writeFileSync(join(directory, "meta"), metadataBefore);
            if (roll === 0) rmSync(path);
            stats.lostDirectoryEntries += 1;
          }
          continue;
        }
        const lastStart = lastCommitStart(written);
        const lastBatches = unsynced.slice(unsynced.length - batchesIn(unsynced, framesBetween(written, lastStart)));
        for (const batch of unsynced.slice(0, unsynced.length - lastBatches.length)) model.applyBatch(batch);
        // Anywhere from nothing of the unsynced commit to all of it (nothing at all one time in six).
        const cut = random.integer(6) === 0 ? lastStart : lastStart + random.integer(written.length - lastStart + 1);
        truncateSync(path, cut);
        let damaged = false;
        if (cut > lastStart && random.integer(2) === 0) {
          // A torn sector: zeros or garbage somewhere in the unsynced tail.
          const from = lastStart + random.integer(cut - lastStart);
          const to = from + 1 + random.integer(Math.min(512, cut - from));
          const fill = Buffer.alloc(to - from);
          const zeros = random.integer(2) === 0;
          if (!zeros) for (let index = 0; index < fill.length; index += 1) fill[index] = random.integer(256);
          const handle = openSync(path, "r+");
          try {
            writeSync(handle, fill, 0, fill.length, from);
          } finally {
            closeSync(handle);
          }
          damaged = !fill.equals(written.subarray(from, to));
          if (damaged) stats.garbage += 1;
        }
        if (cut === written.length && !damaged) {
          for (const batch of lastBatches) model.applyBatch(batch);
          stats.survived += 1;
          expectedTorn = undefined;
        } else if (cut === lastStart) {
          stats.lost += 1;
          expectedTorn = undefined;
        } else {
          stats.torn += 1;
          expectedTorn = { file: path, offset: lastStart, droppedBytes: cut - lastStart };
        }
      } finally {
        if (!closed) await storage.close();
      }
    }
    // A last recovery, and a write after it.
    const storage = await FileStorage.open(directory, { nodeId: NODE, expectExisting: true, segmentBytes: SEGMENT_BYTES });
    expect(comparable(await storage.load()), `seed ${SEED}: final recovery`).toEqual(comparable(model.toStoredState()));
    const batch = maker.batch();
    await storage.persist(batch);
    model.applyBatch(batch);
    await storage.close();
    const reopened = await FileStorage.open(directory, { nodeId: NODE, expectExisting: true, segmentBytes: SEGMENT_BYTES });
    expect(comparable(await reopened.load()), `seed ${SEED}: after a write`).toEqual(comparable(model.toStoredState()));
    await reopened.close();
    console.log(`power-loss test seed ${SEED}: ${JSON.stringify(stats)}; ${segmentNames(directory).length} segments at the end`);
    expect(stats.torn, `seed ${SEED}`).toBeGreaterThan(ITERATIONS / 10);
    expect(stats.survived, `seed ${SEED}`).toBeGreaterThan(0);
    expect(stats.lost, `seed ${SEED}`).toBeGreaterThan(0);
    expect(stats.compactions, `seed ${SEED}`).toBeGreaterThan(0);
  });
});

/** The start of the last group commit of a segment: its commit frame (the last 26 bytes: header, sequence, group start) records it. */
function lastCommitStart(bytes: Buffer): number {
  const groupStart = Number(bytes.readBigUInt64LE(bytes.length - 8));
  if (bytes[bytes.length - 26] !== 0xa7 || bytes[bytes.length - 25] !== 3 || groupStart >= bytes.length) throw new Error(`the segment does not end with a commit frame`);
  return groupStart;
}

/** The frames other than commit frames in `[from, end)`. */
function framesBetween(bytes: Buffer, from: number): number {
  let frames = 0;
  for (let offset = from; offset < bytes.length; offset += 10 + bytes.readUInt32LE(offset + 2)) if (bytes[offset + 1] !== 3) frames += 1;
  return frames;
}

/** How many batches at the end of `batches` make `frames` frames (one per record, one for a batch's marks). */
function batchesIn(batches: readonly PersistBatch[], frames: number): number {
  let count = 0;
  for (let counted = 0; counted < frames; count += 1) {
    const batch = batches[batches.length - 1 - count] as PersistBatch;
    counted += batch.records.length + (batch.chosen.length > 0 ? 1 : 0);
  }
  return count;
}
