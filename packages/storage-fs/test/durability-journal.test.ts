/**
 * The test-only durability journal (`durabilityJournal`) and `losePower`,
 * which fault campaigns use to cut a stopped replica back to what a power
 * cut would have kept: the journal always names the active segment and its
 * synced length, and losing power removes exactly the bytes after it.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DurableImage, SeededRandom, ZERO_BALLOT } from "@synod/core";
import { afterAll, expect, it } from "vitest";
import { FileStorage, POWER_LOSS_FILE, losePower } from "../src/index.js";
import { BatchMaker, NODE, activeSegment, comparable } from "./log-fixture.js";

const root = mkdtempSync(join(tmpdir(), "synod-journal-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const note = (directory: string) => JSON.parse(readFileSync(join(directory, POWER_LOSS_FILE), "utf8")) as { segment: string; bytes: number };

it("notes the active segment's synced length after every commit and roll; losing power cuts only what came after", async () => {
  const directory = join(root, "log");
  const random = new SeededRandom(7);
  const maker = new BatchMaker(7, random);
  const model = new DurableImage(ZERO_BALLOT);
  const storage = await FileStorage.open(directory, { nodeId: NODE, segmentBytes: 4096, durabilityJournal: true });
  for (let commit = 0; commit < 40; commit += 1) {
    const batch = maker.batch({ promise: commit % 7 === 0 });
    await storage.persist(batch);
    model.applyBatch(batch);
    const active = activeSegment(directory);
    expect(note(directory)).toEqual({ segment: active, bytes: statSync(join(directory, active)).size });
  }
  await storage.close();
  // The log rolled at least once: the note followed it to the new segment.
  expect(activeSegment(directory)).not.toBe("wal-0000000000000001.log");

  // Bytes written after the last sync (a group commit the power cut caught): gone; everything synced: kept.
  const active = activeSegment(directory);
  const synced = statSync(join(directory, active)).size;
  appendFileSync(join(directory, active), Buffer.alloc(300, 0xab));
  expect(losePower(directory)).toEqual({ segment: active, keptBytes: synced, lostBytes: 300 });
  expect(statSync(join(directory, active)).size).toBe(synced);
  const reopened = await FileStorage.open(directory, { nodeId: NODE, expectExisting: true, durabilityJournal: true });
  expect(reopened.recovery.tornTail).toBeUndefined();
  expect(comparable(await reopened.load())).toEqual(comparable(model.toStoredState()));
  await reopened.close();
});

it("without the journal nothing is noted, and losePower leaves the directory alone", async () => {
  const directory = join(root, "plain");
  const maker = new BatchMaker(8, new SeededRandom(8));
  const storage = await FileStorage.open(directory, { nodeId: NODE });
  await storage.persist(maker.batch());
  await storage.close();
  expect(losePower(directory)).toBeUndefined();
});
