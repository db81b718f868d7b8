import { type SlotRecord, parseSlotRecord } from "@synod/core";
import { z } from "zod";
import { FrameKind, encodeFrame } from "./frame.js";

/** Payload encodings of the frames, validated when read back. */
export function encodeRecord(record: SlotRecord): Buffer {
  return encodeFrame(FrameKind.record, Buffer.from(JSON.stringify(record)));
}

export function encodeChosenMarks(slots: readonly number[]): Buffer {
  return encodeFrame(FrameKind.chosenMarks, Buffer.from(JSON.stringify(slots)));
}

/** A commit frame: its sequence number and the segment offset where its group of frames began. */
export interface Commit {
  readonly sequence: number;
  readonly groupStart: number;
}

export function encodeCommit(commit: Commit): Buffer {
  const payload = Buffer.alloc(16);
  payload.writeBigUInt64LE(BigInt(commit.sequence), 0);
  payload.writeBigUInt64LE(BigInt(commit.groupStart), 8);
  return encodeFrame(FrameKind.commit, payload);
}

const marksSchema = z.array(z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER));

/** Decodes a record payload; throws with a reason when it is not a valid slot record. */
export function decodeRecord(payload: Buffer): SlotRecord {
  return parseSlotRecord(JSON.parse(payload.toString("utf8")));
}

export function decodeChosenMarks(payload: Buffer): number[] {
  const result = marksSchema.safeParse(JSON.parse(payload.toString("utf8")));
  if (!result.success) throw new Error(`chosen marks: ${z.prettifyError(result.error)}`);
  return result.data;
}

export function decodeCommit(payload: Buffer): Commit {
  if (payload.length !== 16) throw new Error(`commit frame of ${payload.length} bytes, expected 16`);
  const sequence = payload.readBigUInt64LE(0);
  const groupStart = payload.readBigUInt64LE(8);
  if (sequence > BigInt(Number.MAX_SAFE_INTEGER) || groupStart > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new Error("commit frame fields out of range");
  }
  return { sequence: Number(sequence), groupStart: Number(groupStart) };
}
