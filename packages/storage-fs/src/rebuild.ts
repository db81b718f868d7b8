import { copyFile, mkdir, open, readdir, rename } from "node:fs/promises";
import { join } from "node:path";
import { ZERO_BALLOT } from "@synod/core";
import { syncDirectory } from "./atomic-file.js";
import type { StorageCorruptionError } from "./errors.js";
import { METADATA_FILE, type Metadata, readMetadata, writeMetadata } from "./metadata.js";
import { segmentNumber, startLog } from "./segments.js";
import { removeAllSnapshots } from "./snapshot-file.js";

/**
 * Starting over, durably: a reset of a live storage, and a rebuild at open of
 * a directory found corrupt or wiped (`onCorruption: "rebuild"`). Both first
 * make an empty log marked rebuilding durable and only then remove (or move
 * away) the old files, so a crash at any point restarts the replica either
 * with its old state or rebuilding, never with a part of the old state
 * believed whole, nor as a new replica free to vote (Paxos Made Live §5.1).
 */

/** What open found and where it put the damaged files, when it rebuilt the directory (see `FileStorageOptions.onCorruption`). */
export interface RebuildReport {
  /** What was wrong (the corruption's reason). */
  readonly reason: string;
  /** The damaged file; the directory itself when it was wiped. */
  readonly file: string;
  /** Where in `file` the damage was found. */
  readonly offset: number;
  /** The `damaged-<time>` folder that now holds the directory's old files; undefined when there was nothing to move (a wiped directory). */
  readonly movedTo: string | undefined;
}

/** Folders of damaged files that a rebuild kept for forensics: never part of the storage. */
const QUARANTINE_PREFIX = "damaged-";

/** The entries of the data directory that belong to the storage: everything but the `damaged-*` folders. */
export async function storageEntries(directory: string): Promise<string[]> {
  return (await readdir(directory)).filter((name) => !name.startsWith(QUARANTINE_PREFIX));
}

/**
 * Starts an empty log at segment `segment` and writes metadata naming it,
 * marked `rebuilding`, with `discardSnapshots` set because the old snapshot
 * files are still there. Segments below `segment` are leftovers that open
 * removes.
 */
export async function markRebuilding(directory: string, identity: { readonly nodeId: string; readonly incarnation: number }, segment: number): Promise<Metadata> {
  const metadata: Metadata = {
    version: 1,
    nodeId: identity.nodeId,
    incarnation: identity.incarnation,
    promised: ZERO_BALLOT,
    logStart: 0,
    firstSegment: segment,
    activeSegment: segment,
    rebuilding: true,
    discardSnapshots: true,
  };
  await startLog(directory, metadata);
  return metadata;
}

/** Removes the snapshot files and incoming transfer of the state a reset forgot, then clears `discardSnapshots`. */
export async function discardSnapshots(directory: string, metadata: Metadata): Promise<{ readonly metadata: Metadata; readonly removed: readonly string[] }> {
  const removed = await removeAllSnapshots(directory);
  // The removals durable before the note that calls for them is gone.
  await syncDirectory(directory);
  const cleared: Metadata = { ...metadata, discardSnapshots: undefined };
  await writeMetadata(directory, cleared);
  return { metadata: cleared, removed };
}

/**
 * Rebuilds a directory that open found corrupt or wiped: keeps a copy of its
 * metadata in a new `damaged-<time>` folder, marks the directory rebuilding
 * over a new empty segment (past every segment there), moves every other old
 * file into that folder, and clears `discardSnapshots`. The directory is then
 * an empty storage, rebuilding, that opens normally.
 */
export async function rebuildDamaged(
  directory: string,
  identity: { readonly nodeId: string; readonly incarnation: number },
  corruption: StorageCorruptionError,
): Promise<RebuildReport> {
  const names = await storageEntries(directory);
  const old = await readMetadata(directory).catch(() => undefined);
  const incarnation = Math.max(identity.incarnation, (old?.incarnation ?? 0) + 1);
  const quarantine = names.length === 0 ? undefined : await makeQuarantine(directory);
  // Copied, not moved: the old metadata stays in place (the directory still reads as damaged) until the new one replaces it.
  if (quarantine !== undefined && names.includes(METADATA_FILE)) await copyDurably(join(directory, METADATA_FILE), join(quarantine, METADATA_FILE));
  const metadata = await markRebuilding(directory, { nodeId: identity.nodeId, incarnation }, segmentAfter(names));
  if (quarantine !== undefined) {
    for (const name of names.filter((entry) => entry !== METADATA_FILE)) await rename(join(directory, name), join(quarantine, name));
    await syncDirectory(quarantine);
  }
  await discardSnapshots(directory, metadata);
  return { reason: corruption.reason, file: corruption.file, offset: corruption.offset, movedTo: quarantine };
}

/** The first segment number past every segment file in `names`. */
function segmentAfter(names: readonly string[]): number {
  return names.reduce((highest, name) => Math.max(highest, segmentNumber(name) ?? 0), 0) + 1;
}

/** Creates a new, durable `damaged-<ISO time, ":" as "-">` folder in `directory` (suffixed when that name is taken). */
async function makeQuarantine(directory: string): Promise<string> {
  const base = `${QUARANTINE_PREFIX}${new Date().toISOString().replaceAll(":", "-")}`;
  for (let attempt = 1; ; attempt += 1) {
    const path = join(directory, attempt === 1 ? base : `${base}-${attempt}`);
    try {
      await mkdir(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") continue;
      throw error;
    }
    await syncDirectory(directory);
    return path;
  }
}

async function copyDurably(source: string, target: string): Promise<void> {
  await copyFile(source, target);
  const handle = await open(target, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
