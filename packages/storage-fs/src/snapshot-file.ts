import { type FileHandle, open, readFile, readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { crc32c } from "@node-rs/crc32";
import {
  BufferedSnapshot,
  type IncomingSnapshot,
  InvalidInputError,
  type SnapshotHandle,
  type SnapshotIdentity,
  type SnapshotReceiver,
  type StoredSnapshot,
  snapshotHandleSchema as handleSchema,
  readSnapshotHandle,
  snapshotHeader,
} from "@synod/core";
import { z } from "zod";
import { syncDirectory, writeFileAtomically, writeFileAtomicallyWith } from "./atomic-file.js";
import { StorageCorruptionError } from "./errors.js";

/**
 * Snapshot files, `snap-<slot>.snap`:
 *
 *   8 bytes  "SYNSNAP2"
 *   ...      the snapshot's encoding, as replicas send it to each other
 *            (u32 BE handle length, the handle JSON, the application's data)
 *   u64 LE   length of the encoding
 *   u32 LE   CRC32C of the encoding
 *
 * Written as the state machine streams its data (the length and checksum
 * come last), and served to other replicas in place, by offset. Installed
 * atomically (temporary file, fsync, rename, directory fsync); older
 * snapshots are removed after a newer one is durable. Version 1 files
 * ("SYNSNAP1", handle and data in one checksummed run) are still read.
 *
 * A snapshot arriving from another replica is written to `incoming.snap` (the
 * same format, without the trailer until it is whole) and named by
 * `incoming.json`, so that a transfer cut off by a restart goes on from the
 * bytes stored.
 */
const MAGIC = Buffer.from("SYNSNAP2");
const MAGIC_V1 = Buffer.from("SYNSNAP1");
const TRAILER_BYTES = 12;
const PATTERN = /^snap-(\d{16})\.snap$/;
const INCOMING = "incoming.snap";
const INCOMING_META = "incoming.json";
/** Bytes read at a time when checksumming a file. */
const READ_BYTES = 4 * 1024 * 1024;

export function snapshotFileName(slot: number): string {
  return `snap-${String(slot + 1).padStart(16, "0")}.snap`;
}

/** A snapshot file, its encoding read in place. */
export class FileSnapshot implements StoredSnapshot {
  constructor(
    readonly path: string,
    readonly handle: SnapshotHandle,
    readonly size: number,
    readonly checksum: number,
  ) {}

  async read(offset: number, length: number): Promise<Uint8Array> {
    const end = Math.min(this.size, offset + length);
    if (end <= offset) return new Uint8Array(0);
    const file = await open(this.path, "r");
    try {
      return await readExactly(file, MAGIC.length + offset, end - offset, this.path);
    } finally {
      await file.close();
    }
  }
}

/** Writes a snapshot from its handle and its data's chunks as they come; returns it as stored. */
export async function writeSnapshotFile(directory: string, handle: SnapshotHandle, data: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<FileSnapshot> {
  const name = snapshotFileName(handle.slot);
  const { size, checksum } = await writeFileAtomicallyWith(directory, name, async (file) => {
    const header = snapshotHeader(handle);
    let size = header.length;
    let checksum = crc32c(Buffer.from(header.buffer, header.byteOffset, header.length));
    await writeAll(file, MAGIC);
    await writeAll(file, header);
    for await (const chunk of data) {
      checksum = crc32c(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length), checksum);
      size += chunk.length;
      await writeAll(file, chunk);
    }
    await writeAll(file, trailer(size, checksum));
    return { size, checksum };
  });
  return new FileSnapshot(join(directory, name), handle, size, checksum);
}

/** Removes every snapshot file older than `keep`. */
export async function removeSnapshotsBefore(directory: string, keep: string): Promise<void> {
  const stale = (await readdir(directory)).filter((name) => PATTERN.test(name) && name < keep);
  for (const name of stale) await rm(join(directory, name), { force: true });
  if (stale.length > 0) await syncDirectory(directory);
}

/** Removes every snapshot file and any incoming transfer: what a reset forgets. Returns the names removed (the caller syncs the directory). */
export async function removeAllSnapshots(directory: string): Promise<string[]> {
  const names = (await readdir(directory)).filter((name) => PATTERN.test(name) || name === INCOMING || name === INCOMING_META);
  for (const name of names) await rm(join(directory, name), { force: true });
  return names;
}

/** The newest snapshot, checked whole; a damaged newest snapshot is corruption (an older one may not cover the compacted log). */
export async function readLatestSnapshot(directory: string, names: readonly string[]): Promise<StoredSnapshot | undefined> {
  const latest = names.filter((name) => PATTERN.test(name)).sort().at(-1);
  if (latest === undefined) return undefined;
  const path = join(directory, latest);
  const fail = (offset: number, reason: string): never => {
    throw new StorageCorruptionError(path, offset, reason);
  };
  const file = await open(path, "r");
  let snapshot: StoredSnapshot;
  try {
    const fileSize = (await file.stat()).size;
    if (fileSize < MAGIC.length) fail(0, "not a snapshot file (too short)");
    const magic = Buffer.from(await readExactly(file, 0, MAGIC.length, path));
    if (magic.equals(MAGIC_V1)) {
      snapshot = readVersion1(await readFile(path), fail);
    } else {
      if (!magic.equals(MAGIC)) fail(0, "not a snapshot file (bad magic)");
      if (fileSize < MAGIC.length + 4 + TRAILER_BYTES) fail(0, "not a snapshot file (too short)");
      const tail = Buffer.from(await readExactly(file, fileSize - TRAILER_BYTES, TRAILER_BYTES, path));
      const size = Number(tail.readBigUInt64LE(0));
      const checksum = tail.readUInt32LE(8);
      if (MAGIC.length + size + TRAILER_BYTES !== fileSize) fail(fileSize - TRAILER_BYTES, "snapshot length does not match the file size");
      if ((await checksumOf(file, MAGIC.length, size, path)) !== checksum) fail(fileSize - 4, "snapshot checksum mismatch");
      const handle = await readHandle(file, size, path, fail);
      snapshot = new FileSnapshot(path, handle, size, checksum);
    }
  } finally {
    await file.close();
  }
  if (snapshotFileName(snapshot.handle.slot) !== latest) fail(12, `snapshot handle slot ${snapshot.handle.slot} does not match the file name`);
  return snapshot;
}

/** What `incoming.snap` holds of a transfer cut off by a restart; leftovers that name nothing are removed. */
export async function readIncoming(directory: string): Promise<IncomingSnapshot | undefined> {
  let identity: SnapshotIdentity | undefined;
  try {
    identity = identitySchema.parse(JSON.parse(await readFile(join(directory, INCOMING_META), "utf8")));
  } catch {
    // No transfer under way, or a note that cannot be read: the transfer starts afresh.
  }
  let received: number | undefined;
  try {
    const file = await open(join(directory, INCOMING), "r");
    try {
      const magic = Buffer.from(await readExactly(file, 0, MAGIC.length, INCOMING));
      if (magic.equals(MAGIC)) received = (await file.stat()).size - MAGIC.length;
    } finally {
      await file.close();
    }
  } catch {
    // Not there, or not even its magic.
  }
  if (identity === undefined || received === undefined || received > identity.size) {
    await discardIncoming(directory);
    return undefined;
  }
  return { ...identity, received };
}

/**
 * Receives a snapshot into `incoming.snap`: goes on from the bytes stored if
 * they are of the same snapshot, else starts afresh. `complete` checks the
 * whole against the checksum, then makes it the latest snapshot file.
 */
export class IncomingSnapshotFile implements SnapshotReceiver {
  private constructor(
    private readonly directory: string,
    private readonly identity: SnapshotIdentity,
    private readonly file: FileHandle,
    private stored: number,
  ) {}

  static async open(directory: string, identity: SnapshotIdentity): Promise<IncomingSnapshotFile> {
    const kept = await readIncoming(directory);
    const same = kept !== undefined && kept.slot === identity.slot && kept.checksum === identity.checksum && kept.size === identity.size;
    if (!same) {
      await discardIncoming(directory);
      await writeFileAtomically(directory, INCOMING_META, Buffer.from(JSON.stringify({ slot: identity.slot, checksum: identity.checksum, size: identity.size })));
      await writeFileAtomically(directory, INCOMING, MAGIC);
    }
    const file = await open(join(directory, INCOMING), "a+");
    const stored = (await file.stat()).size - MAGIC.length;
    return new IncomingSnapshotFile(directory, identity, file, stored);
  }

  get received(): number {
    return this.stored;
  }

  async append(bytes: Uint8Array): Promise<void> {
    await writeAll(this.file, bytes);
    this.stored += bytes.length;
  }

  /** Checks the bytes stored, then renames them into place as the latest snapshot file. */
  async complete(): Promise<FileSnapshot> {
    const { directory, identity, file } = this;
    const path = join(directory, INCOMING);
    const refuse = async (reason: string): Promise<never> => {
      await file.close().catch(() => undefined);
      await discardIncoming(directory);
      throw new InvalidInputError("snapshot", reason);
    };
    if (this.stored !== identity.size) return refuse(`${this.stored} bytes received of ${identity.size}`);
    if ((await checksumOf(file, MAGIC.length, identity.size, path)) !== identity.checksum) return refuse("the bytes received fail the snapshot's checksum");
    let handle: SnapshotHandle;
    try {
      handle = (await readSnapshotHandle((offset, length) => readExactly(file, MAGIC.length + offset, length, path), identity.size)).handle;
    } catch (error) {
      return refuse((error as Error).message);
    }
    if (handle.slot !== identity.slot) return refuse(`handle at slot ${handle.slot}, expected ${identity.slot}`);
    await writeAll(file, trailer(identity.size, identity.checksum));
    await file.datasync();
    await file.close();
    const name = snapshotFileName(handle.slot);
    await rename(path, join(directory, name));
    await syncDirectory(directory);
    await rm(join(directory, INCOMING_META), { force: true });
    await removeSnapshotsBefore(directory, name);
    return new FileSnapshot(join(directory, name), handle, identity.size, identity.checksum);
  }

  /** Closes the file, keeping what it stored (for the next start). */
  async close(): Promise<void> {
    await this.file.close().catch(() => undefined);
  }
}

const identitySchema = z.object({
  slot: z.number().int().min(0),
  checksum: z.number().int().min(0).max(0xffffffff),
  size: z.number().int().min(0),
});

async function discardIncoming(directory: string): Promise<void> {
  await rm(join(directory, INCOMING_META), { force: true });
  await rm(join(directory, INCOMING), { force: true });
}

function trailer(size: number, checksum: number): Buffer {
  const bytes = Buffer.alloc(TRAILER_BYTES);
  bytes.writeBigUInt64LE(BigInt(size), 0);
  bytes.writeUInt32LE(checksum, 8);
  return bytes;
}

async function writeAll(file: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length; ) {
    const { bytesWritten } = await file.write(bytes, at, bytes.length - at);
    at += bytesWritten;
  }
}

async function readExactly(file: FileHandle, position: number, length: number, path: string): Promise<Uint8Array> {
  const buffer = Buffer.allocUnsafe(length);
  let at = 0;
  while (at < length) {
    const { bytesRead } = await file.read(buffer, at, length - at, position + at);
    if (bytesRead === 0) throw new StorageCorruptionError(path, position + at, `file ends ${length - at} bytes short`);
    at += bytesRead;
  }
  return buffer;
}

/** CRC32C of `length` bytes of `file` from `position`, read a few megabytes at a time. */
async function checksumOf(file: FileHandle, position: number, length: number, path: string): Promise<number> {
  let checksum = 0;
  for (let at = 0; at < length; at += READ_BYTES) {
    const chunk = await readExactly(file, position + at, Math.min(READ_BYTES, length - at), path);
    checksum = crc32c(chunk as Buffer, checksum);
  }
  return checksum;
}

async function readHandle(file: FileHandle, size: number, path: string, fail: (offset: number, reason: string) => never): Promise<SnapshotHandle> {
  try {
    return (await readSnapshotHandle((offset, length) => readExactly(file, MAGIC.length + offset, length, path), size)).handle;
  } catch (error) {
    if (error instanceof StorageCorruptionError) throw error;
    return fail(MAGIC.length, (error as Error).message);
  }
}

/** A version 1 file: "SYNSNAP1", u32 LE handle length, handle, u64 LE data length, data, u32 LE CRC32C of all before. */
function readVersion1(bytes: Buffer, fail: (offset: number, reason: string) => never): StoredSnapshot {
  if (bytes.length < MAGIC_V1.length + 16) fail(0, "not a snapshot file (too short)");
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
  const data = Uint8Array.from(bytes.subarray(handleEnd + 8, handleEnd + 8 + dataLength));
  return new BufferedSnapshot(result.data as SnapshotHandle, data);
}
