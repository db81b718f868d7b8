import { open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import type { DurableImage, PersistBatch, SlotRecord } from "@synod/core";
import { decodeChosenMarks, decodeCommit, decodeRecord } from "./codec.js";
import { syncDirectory } from "./atomic-file.js";
import { StorageCorruptionError } from "./errors.js";
import { FrameKind, readFrame } from "./frame.js";
import { type Metadata, writeMetadata } from "./metadata.js";

/**
 * The log is a sequence of segment files, `wal-<n>.log`, where `n` is the
 * sequence number of the first group commit the segment holds. Commits are
 * numbered without gaps across segments, so a missing segment shows as a gap.
 */
export const SEGMENT_PATTERN = /^wal-(\d{16})\.log$/;

export function segmentFileName(firstCommit: number): string {
  return `wal-${String(firstCommit).padStart(16, "0")}.log`;
}

export function segmentNumber(name: string): number | undefined {
  const match = SEGMENT_PATTERN.exec(name);
  return match === null ? undefined : Number(match[1]);
}

/**
 * Starts a log at `metadata.activeSegment`: creates the segment file and
 * makes it durable before the metadata names it (as a roll does), so on open
 * a missing active segment is always a deleted one.
 */
export async function startLog(directory: string, metadata: Metadata): Promise<void> {
  await (await open(join(directory, segmentFileName(metadata.activeSegment)), "a")).close();
  await syncDirectory(directory);
  await writeMetadata(directory, metadata);
}

/** What recovery and compaction need to know of one segment. */
export interface SegmentInfo {
  readonly name: string;
  /** The commit sequence number that names it. */
  readonly firstCommit: number;
  /** Size in bytes after recovery (a torn tail cut off). */
  bytes: number;
  /** The highest slot any record in it holds (-1 when none): it may be deleted once below `logStart`. */
  maxSlot: number;
}

/** A torn tail found and cut off at open: the last group commit never completed. */
export interface TornTail {
  readonly file: string;
  /** Where the file now ends: after the last complete commit. */
  readonly offset: number;
  readonly droppedBytes: number;
  readonly reason: string;
}

export interface ScanResult {
  readonly segments: SegmentInfo[];
  /** The sequence number the next group commit takes. */
  readonly nextCommit: number;
  readonly commits: number;
  readonly records: number;
  readonly tornTail: TornTail | undefined;
}

/**
 * Replays every segment into `image`, checking each frame, each commit's
 * sequence number and the segments' continuity. Only whole group commits are
 * applied. Damage in the last group commit of the last segment is a torn
 * write from a crash and is cut off (reported); damage anywhere else is
 * corruption, reported with its file and offset.
 */
export async function scanSegments(
  directory: string,
  allNames: readonly string[],
  expected: { readonly firstSegment: number; readonly activeSegment: number },
  image: DurableImage,
): Promise<ScanResult> {
  const segments: SegmentInfo[] = [];
  let nextCommit = expected.firstSegment;
  let commits = 0;
  let records = 0;
  let tornTail: TornTail | undefined;
  const names = await dropUnrecordedRoll(directory, allNames, expected.activeSegment);
  const ordered = [...names].sort();
  for (const [index, name] of ordered.entries()) {
    const path = join(directory, name);
    const firstCommit = segmentNumber(name) as number;
    if (firstCommit !== nextCommit) {
      throw new StorageCorruptionError(path, 0, `segment starts at commit ${firstCommit} but commit ${nextCommit} was expected: a segment is missing`);
    }
    const isLast = index === ordered.length - 1;
    const bytes = await readFile(path);
    const scan = scanBuffer(path, bytes, nextCommit, isLast);
    for (const batch of scan.batches) image.applyBatch(batch);
    commits += scan.batches.length;
    records += scan.batches.reduce((sum, batch) => sum + batch.records.length, 0);
    nextCommit += scan.batches.length;
    if (scan.cutAt !== undefined) {
      tornTail = { file: path, offset: scan.cutAt, droppedBytes: bytes.length - scan.cutAt, reason: scan.cutReason };
      const handle = await open(path, "r+");
      try {
        await handle.truncate(scan.cutAt);
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    segments.push({ name, firstCommit, bytes: scan.cutAt ?? bytes.length, maxSlot: scan.maxSlot });
  }
  // A roll creates the new segment's file before the metadata names it, so
  // the active segment always exists: a missing one was deleted.
  const last = segments.at(-1);
  if (last === undefined || last.firstCommit !== expected.activeSegment) {
    throw new StorageCorruptionError(
      join(directory, segmentFileName(expected.activeSegment)),
      0,
      `the active segment is missing (the log ends at commit ${nextCommit - 1})`,
    );
  }
  return { segments, nextCommit, commits, records, tornTail };
}

interface BufferScan {
  readonly batches: PersistBatch[];
  readonly maxSlot: number;
  readonly cutAt: number | undefined;
  readonly cutReason: string;
}

function scanBuffer(path: string, bytes: Buffer, firstCommit: number, isLast: boolean): BufferScan {
  const batches: PersistBatch[] = [];
  let maxSlot = -1;
  let offset = 0;
  let lastCommitEnd = 0;
  let pendingRecords: SlotRecord[] = [];
  let pendingMarks: number[] = [];
  const torn = (reason: string): BufferScan => ({ batches, maxSlot, cutAt: lastCommitEnd, cutReason: reason });
  while (offset < bytes.length) {
    const frame = readFrame(bytes, offset);
    if (!frame.ok) {
      if (isLast && frame.checksummed !== true && !hasCompleteCommitAfter(bytes, offset)) return torn(frame.reason);
      throw new StorageCorruptionError(path, offset, frame.reason);
    }
    try {
      switch (frame.kind) {
        case FrameKind.record: {
          const record = decodeRecord(frame.payload);
          pendingRecords.push(record);
          break;
        }
        case FrameKind.chosenMarks:
          pendingMarks.push(...decodeChosenMarks(frame.payload));
          break;
        case FrameKind.commit: {
          const commit = decodeCommit(frame.payload);
          const expected = firstCommit + batches.length;
          if (commit.sequence !== expected) throw new Error(`commit ${commit.sequence} where commit ${expected} was expected`);
          if (commit.groupStart !== lastCommitEnd) throw new Error(`commit ${commit.sequence} says its group began at ${commit.groupStart}, not ${lastCommitEnd}`);
          batches.push({ promised: undefined, records: pendingRecords, chosen: pendingMarks, truncateBefore: undefined });
          for (const record of pendingRecords) if (record.slot > maxSlot) maxSlot = record.slot;
          pendingRecords = [];
          pendingMarks = [];
          lastCommitEnd = frame.end;
          break;
        }
      }
    } catch (error) {
      // The checksum held, so this is not a torn write: the content itself is wrong.
      throw new StorageCorruptionError(path, offset, (error as Error).message);
    }
    offset = frame.end;
  }
  if (pendingRecords.length > 0 || pendingMarks.length > 0) {
    if (isLast) return torn("the last group commit has no commit frame");
    throw new StorageCorruptionError(path, lastCommitEnd, "frames after the last commit of a closed segment");
  }
  return { batches, maxSlot, cutAt: undefined, cutReason: "" };
}

/**
 * Group commits are written one at a time, each only after the previous
 * one's fdatasync returned. So if a whole, valid group commit begins after
 * the damage, the damaged one had been durable: that is corruption, not a
 * torn write. Finds every valid commit frame after `damage` whose group
 * began after it, and checks that group's frames.
 */
function hasCompleteCommitAfter(bytes: Buffer, damage: number): boolean {
  for (let start = bytes.indexOf(0xa7, damage + 1); start !== -1; start = bytes.indexOf(0xa7, start + 1)) {
    const frame = readFrame(bytes, start);
    if (!frame.ok || frame.kind !== FrameKind.commit) continue;
    let groupStart: number;
    try {
      groupStart = decodeCommit(frame.payload).groupStart;
    } catch {
      continue;
    }
    if (groupStart > damage && groupStart <= start && framesValid(bytes, groupStart, start)) return true;
  }
  return false;
}

/** True when `[from, to)` is a run of whole, valid non-commit frames. */
function framesValid(bytes: Buffer, from: number, to: number): boolean {
  let offset = from;
  while (offset < to) {
    const frame = readFrame(bytes, offset);
    if (!frame.ok || frame.kind === FrameKind.commit) return false;
    offset = frame.end;
  }
  return offset === to;
}

/**
 * A segment past the one the metadata calls active is a roll that crashed
 * after creating the file and before recording it: empty, it is removed;
 * with content it is corruption (nothing is written before the roll is recorded).
 */
async function dropUnrecordedRoll(directory: string, names: readonly string[], activeSegment: number): Promise<string[]> {
  const kept: string[] = [];
  for (const name of names) {
    if ((segmentNumber(name) as number) <= activeSegment) {
      kept.push(name);
      continue;
    }
    const path = join(directory, name);
    const handle = await open(path, "r");
    const { size } = await handle.stat();
    await handle.close();
    if (size > 0) throw new StorageCorruptionError(path, 0, `segment beyond the active segment ${activeSegment}`);
    await rm(path);
  }
  return kept;
}

/** Deletes segment files (already recorded as gone in the metadata). */
export async function removeSegments(directory: string, names: readonly string[]): Promise<void> {
  for (const name of names) await rm(join(directory, name), { force: true });
}
