import { z } from "zod";
import { crc32c } from "./bytes.js";
import { InvalidInputError } from "./errors.js";
import { type Snapshot, type SnapshotHandle, collectChunks } from "./host.js";
import { snapshotHandleSchema } from "./schema.js";
import type { SnapshotIdentity, StoredSnapshot } from "./storage.js";

/**
 * A snapshot as one run of bytes, for sending between replicas in chunks:
 *
 *   u32 BE   length of the handle JSON, then the handle JSON (UTF-8)
 *   ...      the application's data
 *
 * The whole run's CRC32C travels with every chunk, so the receiver checks
 * what it assembled before it believes a byte of it.
 */
export function encodeSnapshot(snapshot: Snapshot): { readonly bytes: Uint8Array; readonly checksum: number } {
  const header = snapshotHeader(snapshot.handle);
  const bytes = new Uint8Array(header.length + snapshot.data.byteLength);
  bytes.set(header);
  bytes.set(snapshot.data, header.length);
  return { bytes, checksum: crc32c(bytes) };
}

/** The bytes before the data: the handle's length and the handle. A sender can stream these, then the data, without copying it. */
export function snapshotHeader(handle: SnapshotHandle): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(handle));
  const header = new Uint8Array(4 + json.length);
  new DataView(header.buffer).setUint32(0, json.length);
  header.set(json, 4);
  return header;
}

/** Decodes `encodeSnapshot`'s bytes, validating the handle; throws `InvalidInputError` on anything else. */
export function decodeSnapshot(bytes: Uint8Array): Snapshot {
  if (bytes.length < 4) throw new InvalidInputError("snapshot", "shorter than its header");
  const handleLength = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
  if (4 + handleLength > bytes.length) throw new InvalidInputError("snapshot", `handle length ${handleLength} runs past the end`);
  // The data is a view, not a copy: a snapshot can be most of the memory a replica has.
  return { handle: parseHandle(bytes.subarray(4, 4 + handleLength)), data: bytes.subarray(4 + handleLength) };
}

/** Reads and validates the handle at the start of a stored snapshot's encoding; returns it and where the data starts. */
export async function readSnapshotHandle(
  read: (offset: number, length: number) => Promise<Uint8Array>,
  size: number,
): Promise<{ readonly handle: SnapshotHandle; readonly dataOffset: number }> {
  const prefix = await read(0, 4);
  if (prefix.length < 4 || size < 4) throw new InvalidInputError("snapshot", "shorter than its header");
  const handleLength = new DataView(prefix.buffer, prefix.byteOffset, 4).getUint32(0);
  if (4 + handleLength > size) throw new InvalidInputError("snapshot", `handle length ${handleLength} runs past the end`);
  return { handle: parseHandle(await read(4, handleLength)), dataOffset: 4 + handleLength };
}

function parseHandle(bytes: Uint8Array): SnapshotHandle {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw new InvalidInputError("snapshot", `handle is not JSON: ${(error as Error).message}`);
  }
  const result = snapshotHandleSchema.safeParse(parsed);
  if (!result.success) throw new InvalidInputError("snapshot", `invalid handle: ${z.prettifyError(result.error)}`);
  return result.data as SnapshotHandle;
}

/** A stored snapshot's data (the application's bytes, after the handle), read in chunks of `chunkBytes`. */
export async function* snapshotData(stored: StoredSnapshot, chunkBytes = 1024 * 1024): AsyncGenerator<Uint8Array> {
  const { dataOffset } = await readSnapshotHandle((offset, length) => stored.read(offset, length), stored.size);
  for (let offset = dataOffset; offset < stored.size; offset += chunkBytes) {
    const chunk = await stored.read(offset, chunkBytes);
    if (chunk.length === 0) throw new InvalidInputError("snapshot", `ends at ${offset} of ${stored.size} bytes`);
    yield chunk;
  }
}

/** A snapshot held in memory: for small states, tests, and storages that keep nothing on disk. */
export class BufferedSnapshot implements StoredSnapshot {
  readonly size: number;
  readonly checksum: number;
  private readonly header: Uint8Array;

  constructor(
    readonly handle: SnapshotHandle,
    readonly data: Uint8Array,
  ) {
    this.header = snapshotHeader(handle);
    this.size = this.header.length + data.length;
    this.checksum = crc32c(data, crc32c(this.header));
  }

  /** Serializes a state machine's chunks into memory. */
  static async of(handle: SnapshotHandle, data: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<BufferedSnapshot> {
    return new BufferedSnapshot(handle, await collectChunks(data));
  }

  /** Decodes and checks received bytes: throws `InvalidInputError` unless they are `identity`'s snapshot. */
  static received(identity: SnapshotIdentity, bytes: Uint8Array): BufferedSnapshot {
    if (bytes.length !== identity.size) throw new InvalidInputError("snapshot", `${bytes.length} bytes received of ${identity.size}`);
    if (crc32c(bytes) !== identity.checksum) throw new InvalidInputError("snapshot", "the bytes received fail the snapshot's checksum");
    const snapshot = decodeSnapshot(bytes);
    if (snapshot.handle.slot !== identity.slot) throw new InvalidInputError("snapshot", `handle at slot ${snapshot.handle.slot}, expected ${identity.slot}`);
    return new BufferedSnapshot(snapshot.handle, snapshot.data);
  }

  /** Copies bytes `[offset, offset + length)` of the header and data into one chunk. */
  async read(offset: number, length: number): Promise<Uint8Array> {
    const end = Math.min(this.size, offset + length);
    const chunk = new Uint8Array(Math.max(0, end - offset));
    const headerLength = this.header.length;
    if (offset < headerLength) chunk.set(this.header.subarray(offset, Math.min(headerLength, end)));
    if (end > headerLength) {
      const from = Math.max(offset, headerLength);
      chunk.set(this.data.subarray(from - headerLength, end - headerLength), from - offset);
    }
    return chunk;
  }
}
