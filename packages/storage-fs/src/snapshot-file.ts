import { readFile, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { crc32c } from "@node-rs/crc32";
import { type Snapshot, type SnapshotHandle, snapshotHandleSchema as handleSchema } from "@synod/core";
import { z } from "zod";
import { syncDirectory, writeFileAtomically } from "./atomic-file.js";
import { StorageCorruptionError } from "./errors.js";

/**
 * Snapshot files, `snap-<slot>.snap`:
 *
 *   8 bytes  "SYNSNAP1"
 *   u32 LE   length of the handle JSON, then the handle JSON
 *   u64 LE   length of the data, then the data
 *   u32 LE   CRC32C of everything before it
 *
 * Installed atomically (temporary file, fsync, rename, directory fsync);
 * older snapshots are removed after a newer one is durable.
 */
const MAGIC = Buffer.from("SYNSNAP1");
const PATTERN = /^snap-(\d{16})\.snap$/;

export function snapshotFileName(slot: number): string {
  return `snap-${String(slot + 1).padStart(16, "0")}.snap`;
}

export async function writeSnapshotFile(directory: string, snapshot: Snapshot): Promise<string> {
  const handle = Buffer.from(JSON.stringify(snapshot.handle));
  const handleLength = Buffer.alloc(4);
  handleLength.writeUInt32LE(handle.length);
  const dataLength = Buffer.alloc(8);
  dataLength.writeBigUInt64LE(BigInt(snapshot.data.byteLength));
  const parts = [MAGIC, handleLength, handle, dataLength, snapshot.data];
  let crc = 0;
  for (const part of parts) crc = crc32c(part, crc);
  const trailer = Buffer.alloc(4);
  trailer.writeUInt32LE(crc);
  const name = snapshotFileName(snapshot.handle.slot);
  await writeFileAtomically(directory, name, [...parts, trailer]);
  return name;
}

/** Removes every snapshot file older than `keep`. */
export async function removeSnapshotsBefore(directory: string, keep: string): Promise<void> {
  const stale = (await readdir(directory)).filter((name) => PATTERN.test(name) && name < keep);
  for (const name of stale) await rm(join(directory, name), { force: true });
  if (stale.length > 0) await syncDirectory(directory);
}

/** The newest snapshot, validated; a damaged newest snapshot is corruption (an older one may not cover the compacted log). */
export async function readLatestSnapshot(directory: string, names: readonly string[]): Promise<Snapshot | undefined> {
  const latest = names.filter((name) => PATTERN.test(name)).sort().at(-1);
  if (latest === undefined) return undefined;
  const path = join(directory, latest);
  const bytes = await readFile(path);
  const fail = (offset: number, reason: string): never => {
    throw new StorageCorruptionError(path, offset, reason);
  };
  if (bytes.length < MAGIC.length + 16 || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) fail(0, "not a snapshot file (bad magic or too short)");
  if (crc32c(bytes.subarray(0, bytes.length - 4)) !== bytes.readUInt32LE(bytes.length - 4)) fail(bytes.length - 4, "snapshot checksum mismatch");
  const handleLength = bytes.readUInt32LE(8);
  const handleEnd = 12 + handleLength;
  if (handleEnd + 8 + 4 > bytes.length) fail(8, "snapshot handle length out of range");
  const dataLength = Number(bytes.readBigUInt64LE(handleEnd));
  if (handleEnd + 8 + dataLength + 4 !== bytes.length) fail(handleEnd, "snapshot data length does not match the file size");
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.subarray(12, handleEnd).toString("utf8"));
  } catch (error) {
    fail(12, `snapshot handle is not JSON (${(error as Error).message})`);
  }
  const result = handleSchema.safeParse(parsed);
  if (!result.success) fail(12, `invalid snapshot handle: ${z.prettifyError(result.error)}`);
  const handle = result.data as SnapshotHandle;
  if (snapshotFileName(handle.slot) !== latest) fail(12, `snapshot handle slot ${handle.slot} does not match the file name`);
  const data = new Uint8Array(bytes.buffer, bytes.byteOffset + handleEnd + 8, dataLength);
  return { handle, data: Uint8Array.from(data) };
}
