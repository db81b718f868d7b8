import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { crc32c } from "@node-rs/crc32";
import { type Ballot, ballotSchema } from "@synod/core";
import { z } from "zod";
import { writeFileAtomically } from "./atomic-file.js";
import { StorageCorruptionError } from "./errors.js";

export const METADATA_FILE = "meta";

/**
 * What the storage keeps beside the log, rewritten atomically when it changes
 * (rarely: an election, a snapshot, a segment roll).
 */
export interface Metadata {
  readonly version: 1;
  /** The replica this directory belongs to. */
  readonly nodeId: string;
  /** Bumped each time the replica's data is rebuilt from scratch (Paxos Made Live §5.1). */
  readonly incarnation: number;
  /** The acceptor's promised ballot. */
  readonly promised: Ballot;
  /** Slots below this were compacted into a snapshot. */
  readonly logStart: number;
  /** The commit sequence that names the first segment still needed. */
  readonly firstSegment: number;
  /** The commit sequence that names the segment being appended to. */
  readonly activeSegment: number;
  /**
   * The replica's state was lost (corrupted, wiped, or reset) and it has not
   * finished rebuilding from its peers (`StoredState.rebuilding`); cleared by
   * a batch with `rebuilt`. Absent in directories written before it existed.
   */
  readonly rebuilding?: boolean;
  /**
   * Set by a reset (or a rebuild at open) together with `rebuilding`, before
   * it removes the files of the state it forgot, and cleared once they are
   * gone: while set, every snapshot file and incoming transfer in the
   * directory belongs to the forgotten state, and open removes them (old
   * segments need no such note: they lie below `firstSegment`).
   */
  readonly discardSnapshots?: boolean;
}

const metadataSchema = z.object({
  version: z.literal(1),
  nodeId: z.string().min(1),
  incarnation: z.number().int().positive(),
  promised: ballotSchema,
  logStart: z.number().int().nonnegative(),
  firstSegment: z.number().int().positive(),
  activeSegment: z.number().int().positive(),
  rebuilding: z.boolean().optional(),
  discardSnapshots: z.boolean().optional(),
});

/** File format: CRC32C (u32 LE) of the JSON, then the JSON. */
export async function writeMetadata(directory: string, metadata: Metadata): Promise<void> {
  const json = Buffer.from(JSON.stringify(metadata));
  const header = Buffer.alloc(4);
  header.writeUInt32LE(crc32c(json));
  await writeFileAtomically(directory, METADATA_FILE, [header, json]);
}

/** Reads and validates the metadata, or undefined when the file does not exist. */
export async function readMetadata(directory: string): Promise<Metadata | undefined> {
  const path = join(directory, METADATA_FILE);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  if (bytes.length < 4) throw new StorageCorruptionError(path, 0, `metadata of ${bytes.length} bytes is too short`);
  const json = bytes.subarray(4);
  if (crc32c(json) !== bytes.readUInt32LE(0)) throw new StorageCorruptionError(path, 0, "metadata checksum mismatch");
  let parsed: unknown;
  try {
    parsed = JSON.parse(json.toString("utf8"));
  } catch (error) {
    throw new StorageCorruptionError(path, 4, `metadata is not JSON (${(error as Error).message})`);
  }
  const result = metadataSchema.safeParse(parsed);
  if (!result.success) throw new StorageCorruptionError(path, 4, `invalid metadata: ${z.prettifyError(result.error)}`);
  return result.data as Metadata;
}
