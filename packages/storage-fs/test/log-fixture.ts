/**
 * Helpers for the fault and power-loss tests: building a log whose group
 * commits are known byte for byte, with a reference model of the state after
 * every commit (core's DurableImage, the semantics every storage shares).
 */
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BufferedSnapshot, DurableImage, type PersistBatch, type SlotRecord, type StoredState, ZERO_BALLOT } from "@synod/core";
import { expect } from "vitest";
import { FrameKind, readFrame } from "../src/frame.js";
import { FileStorage, StorageCorruptionError } from "../src/index.js";
import { expectedValue } from "./crash-model.js";

export const NODE = "fault";

/** One group commit: where its bytes are, and what it wrote. */
export interface CommitSpan {
  readonly index: number;
  readonly segment: string;
  readonly start: number;
  readonly end: number;
  readonly batches: readonly PersistBatch[];
}

/** One frame of a segment file. */
export interface FrameSpan {
  readonly start: number;
  readonly end: number;
  readonly kind: FrameKind;
}

export function segmentNames(directory: string): string[] {
  return readdirSync(directory)
    .filter((name) => /^wal-\d{16}\.log$/.test(name))
    .sort();
}

export function activeSegment(directory: string): string {
  const name = segmentNames(directory).at(-1);
  if (name === undefined) throw new Error(`no segment in ${directory}`);
  return name;
}

export function fileSize(path: string): number {
  return statSync(path).size;
}

export function copyDirectory(from: string, to: string): void {
  cpSync(from, to, { recursive: true });
}

/** A temporary folder for a test file's cases: new directories in it, and copies of built logs to damage. */
export class ScratchArea {
  readonly root: string;
  private cases = 0;

  constructor(prefix: string) {
    this.root = mkdtempSync(join(tmpdir(), prefix));
  }

  /** A path for a new case, not yet created. */
  path(): string {
    return join(this.root, `case-${this.cases++}`);
  }

  /** A fresh copy of a built log. */
  copy(log: BuiltLog): string {
    const directory = this.path();
    copyDirectory(log.directory, directory);
    return directory;
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** The frames of a well-formed segment file. */
export function framesOf(bytes: Buffer): FrameSpan[] {
  const frames: FrameSpan[] = [];
  for (let offset = 0; offset < bytes.length; ) {
    const frame = readFrame(bytes, offset);
    if (!frame.ok) throw new Error(`fixture segment damaged at ${offset}: ${frame.reason}`);
    frames.push({ start: offset, end: frame.end, kind: frame.kind });
    offset = frame.end;
  }
  return frames;
}

/** What `load()` must return, in comparable form (snapshots compared by slot). */
export function comparable(state: StoredState): { records: readonly SlotRecord[]; logStart: number; promised: StoredState["promised"]; snapshotSlot: number | undefined } {
  return { records: state.records, logStart: state.logStart, promised: state.promised, snapshotSlot: state.snapshot?.handle.slot };
}

/** Builds batches whose values are a pure function of (seed, slot): records, rewrites at a higher ballot, chosen marks. */
export class BatchMaker {
  nextSlot = 0;
  round = 1;
  private readonly unchosen: number[] = [];

  constructor(
    readonly seed: number,
    private readonly random: { integer(bound: number): number },
  ) {}

  private readonly values = new Map<number, SlotRecord["value"]>();

  /** A slot's value: from crash-model (tiny to ~1 KiB), or a ~100-byte one when `small`. */
  private valueOf(slot: number, small: boolean): SlotRecord["value"] {
    let value = this.values.get(slot);
    if (value === undefined) {
      value = small ? { type: "batch", time: slot, commands: [{ session: "s", seq: slot, body: { type: "op", op: `small-${slot}` } }] } : expectedValue(this.seed, slot);
      this.values.set(slot, value);
    }
    return value;
  }

  batch(options: { records?: number; marks?: boolean; promise?: boolean; small?: boolean } = {}): PersistBatch {
    let promised: PersistBatch["promised"];
    if (options.promise === true) {
      this.round += 1;
      promised = { round: this.round, node: NODE };
    }
    const ballot = { round: this.round, node: NODE };
    const records: SlotRecord[] = [];
    const count = options.records ?? 1 + this.random.integer(3);
    for (let index = 0; index < count; index += 1) {
      const slot = this.nextSlot++;
      const chosen = this.random.integer(5) === 0;
      records.push({ slot, ballot, value: this.valueOf(slot, options.small === true), chosen });
      if (!chosen) this.unchosen.push(slot);
    }
    if (options.small !== true && this.unchosen.length > 2 && this.random.integer(6) === 0) {
      const slot = this.unchosen[this.random.integer(this.unchosen.length)] as number;
      if (!records.some((record) => record.slot === slot)) records.push({ slot, ballot, value: this.valueOf(slot, false), chosen: false });
    }
    const chosen: number[] = [];
    if (options.marks !== false && this.unchosen.length > 0 && this.random.integer(3) === 0) {
      chosen.push(this.unchosen.splice(this.random.integer(this.unchosen.length), 1)[0] as number);
    }
    return { promised, records, chosen, truncateBefore: undefined };
  }

  /** Forgets slots below a truncation. */
  truncated(before: number): void {
    for (let index = this.unchosen.length - 1; index >= 0; index -= 1) if ((this.unchosen[index] as number) < before) this.unchosen.splice(index, 1);
  }
}

export interface BuiltLog {
  readonly directory: string;
  readonly segmentBytes: number;
  readonly commits: readonly CommitSpan[];
  /** states[k]: what load() returns after the first k commits (k = 0 … commits.length). */
  readonly states: readonly ReturnType<typeof comparable>[];
  /** Segment files compaction deleted, with their bytes. */
  readonly freed: ReadonlyMap<string, Buffer>;
}

/**
 * Writes a log into `directory` with small segments: `commits` steps, each a
 * burst of one to three batches persisted together (so group commits hold
 * several batches), a promise in the first, and optionally a snapshot plus
 * truncation that frees the first segments; then one-record steps until the
 * active segment holds `lastSegmentCommits` commits. Commit boundaries are
 * read back from the commit frames (each names where its group began), and
 * the batches assigned to them in order, so the test does not depend on how
 * the storage groups a burst.
 */
export async function buildLog(
  directory: string,
  options: {
    readonly segmentBytes: number;
    /** Steps of one to three batches persisted together. */
    readonly commits: number;
    readonly seed: number;
    readonly compactAt?: number;
    /** Then small one-record steps until the active segment holds exactly this many commits (1: the last commit opens a new segment). */
    readonly lastSegmentCommits?: number;
    readonly random: { integer(bound: number): number };
  },
): Promise<BuiltLog> {
  const storage = await FileStorage.open(directory, { nodeId: NODE, segmentBytes: options.segmentBytes });
  const maker = new BatchMaker(options.seed, options.random);
  const issued: PersistBatch[] = [];
  /** Commit spans by sequence number, read from the segment files after every step. */
  const spans = new Map<number, { segment: string; start: number; end: number; frames: number }>();
  const freed = new Map<string, Buffer>();
  const scan = (): void => {
    for (const segment of segmentNames(directory)) {
      const bytes = readFileSync(join(directory, segment));
      let frames = 0;
      for (const frame of framesOf(bytes)) {
        if (frame.kind !== FrameKind.commit) {
          frames += 1;
          continue;
        }
        const payload = bytes.subarray(frame.start + 10, frame.end);
        const sequence = Number(payload.readBigUInt64LE(0));
        spans.set(sequence, { segment, start: Number(payload.readBigUInt64LE(8)), end: frame.end, frames });
        frames = 0;
      }
    }
  };
  const inActive = (): number => [...spans.values()].filter((span) => span.segment === activeSegment(directory)).length;
  try {
    for (let step = 0; step < options.commits || (options.lastSegmentCommits !== undefined && inActive() !== options.lastSegmentCommits); step += 1) {
      if (step > options.commits + 200) throw new Error("fixture: could not shape the last segment");
      const batches: PersistBatch[] = [];
      if (step === options.compactAt) {
        const slot = maker.nextSlot - 4;
        const snapshot = { handle: { slot, time: slot, configs: [{ id: -1, voters: [NODE], learners: [] }], sessions: [] }, data: new Uint8Array([1, 2, 3, slot & 0xff]) };
        await storage.writeSnapshot(snapshot.handle, [snapshot.data]);
        for (const name of segmentNames(directory)) freed.set(name, readFileSync(join(directory, name)));
        batches.push({ ...maker.batch({ records: 1, marks: false }), truncateBefore: slot + 1 });
        maker.truncated(slot + 1);
      } else if (step >= options.commits) {
        batches.push(maker.batch({ records: 1, small: true }));
      } else {
        const count = 1 + options.random.integer(3);
        for (let batch = 0; batch < count; batch += 1) batches.push(maker.batch({ promise: step === 0 && batch === 0 }));
      }
      issued.push(...batches);
      await Promise.all(batches.map((batch) => storage.persist(batch)));
      scan();
    }
  } finally {
    await storage.close();
  }
  for (const name of segmentNames(directory)) freed.delete(name);
  // Assign the batches, in order, to the commits by their frame counts, and replay them into the model.
  const model = new DurableImage(ZERO_BALLOT);
  const states = [comparable(model.toStoredState())];
  const commits: CommitSpan[] = [];
  const sequences = [...spans.keys()].sort((a, b) => a - b);
  let next = 0;
  for (const [index, sequence] of sequences.entries()) {
    if (sequence !== index + 1) throw new Error(`fixture: commit ${index + 1} not found`);
    const span = spans.get(sequence) as { segment: string; start: number; end: number; frames: number };
    const batches: PersistBatch[] = [];
    let frames = 0;
    while (frames < span.frames) {
      const batch = issued[next++];
      if (batch === undefined) throw new Error("fixture: more frames than batches");
      batches.push(batch);
      frames += batch.records.length + (batch.chosen.length > 0 ? 1 : 0);
    }
    if (frames !== span.frames) throw new Error(`fixture: commit ${sequence} does not end at a batch boundary`);
    for (const batch of batches) model.applyBatch(batch);
    if (batches.some((batch) => batch.truncateBefore !== undefined)) {
      // The snapshot was saved before the truncating commit.
      const slot = (batches.find((batch) => batch.truncateBefore !== undefined)?.truncateBefore as number) - 1;
      model.installSnapshot(new BufferedSnapshot({ slot, time: slot, configs: [{ id: -1, voters: [NODE], learners: [] }], sessions: [] }, new Uint8Array([1, 2, 3, slot & 0xff])));
    }
    commits.push({ index, segment: span.segment, start: span.start, end: span.end, batches });
    states.push(comparable(model.toStoredState()));
  }
  if (next !== issued.length) throw new Error("fixture: batches left over");
  return { directory, segmentBytes: options.segmentBytes, commits, states, freed };
}

/** Asserts that opening fails with StorageCorruptionError (or a subclass) naming `file` (when given). */
export async function expectCorruption(opening: Promise<FileStorage>, file?: string): Promise<StorageCorruptionError> {
  let storage: FileStorage | undefined;
  try {
    storage = await opening;
  } catch (error) {
    expect(error, String(error)).toBeInstanceOf(StorageCorruptionError);
    const corruption = error as StorageCorruptionError;
    if (file !== undefined) expect(corruption.file).toBe(file);
    expect(corruption.message).toContain(corruption.file);
    return corruption;
  }
  const state = await storage.load();
  await storage.close();
  throw new Error(`expected StorageCorruptionError${file === undefined ? "" : ` naming ${file}`}, but the log opened with ${state.records.length} records`);
}

/** Opens, returning the storage or the error (never throwing). */
export async function tryOpen(directory: string, options: { expectExisting?: boolean; segmentBytes?: number } = {}): Promise<FileStorage | Error> {
  try {
    return await FileStorage.open(directory, { nodeId: NODE, expectExisting: options.expectExisting ?? true, ...(options.segmentBytes === undefined ? {} : { segmentBytes: options.segmentBytes }) });
  } catch (error) {
    return error as Error;
  }
}

export function readBytes(path: string): Buffer {
  return readFileSync(path);
}

export { FrameKind };
