import { z } from "zod";
import { crc32c } from "./bytes.js";
import { InvalidInputError } from "./errors.js";
import type { Snapshot, SnapshotHandle } from "./host.js";
import { snapshotHandleSchema } from "./schema.js";

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
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(4, 4 + handleLength)));
  } catch (error) {
    throw new InvalidInputError("snapshot", `handle is not JSON: ${(error as Error).message}`);
  }
  const result = snapshotHandleSchema.safeParse(parsed);
  if (!result.success) throw new InvalidInputError("snapshot", `invalid handle: ${z.prettifyError(result.error)}`);
  // A view, not a copy: a snapshot can be most of the memory a replica has.
  return { handle: result.data as SnapshotHandle, data: bytes.subarray(4 + handleLength) };
}
