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
  const handle = new TextEncoder().encode(JSON.stringify(snapshot.handle));
  const bytes = new Uint8Array(4 + handle.length + snapshot.data.byteLength);
  new DataView(bytes.buffer).setUint32(0, handle.length);
  bytes.set(handle, 4);
  bytes.set(snapshot.data, 4 + handle.length);
  return { bytes, checksum: crc32c(bytes) };
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
  return { handle: result.data as SnapshotHandle, data: bytes.slice(4 + handleLength) };
}
