import { existsSync, readFileSync, readdirSync, renameSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";

/**
 * Test-only: what a power cut would keep. With `durabilityJournal` on, the
 * storage notes after every fdatasync (and every new segment) how many bytes
 * of its active segment are durable, in `power-loss.json`; `losePower` then
 * cuts a stopped replica's log back to that, as a power cut would (the page
 * cache lost, the synced bytes kept). A process killed with SIGKILL keeps
 * everything it wrote, synced or not; this keeps only what was promised.
 * Metadata and snapshots need nothing: they are replaced atomically, after
 * an fsync, and a kill already loses a replacement that did not finish.
 */
export const POWER_LOSS_FILE = "power-loss.json";

const journalSchema = z.strictObject({ segment: z.string().regex(/^wal-\d+\.log$/), bytes: z.number().int().nonnegative() });

/** Notes that the first `bytes` bytes of `segment` are durable (atomically: a kill leaves the old note or the new). */
export function noteDurable(directory: string, segment: string, bytes: number): void {
  const temporary = join(directory, `${POWER_LOSS_FILE}.tmp`);
  writeFileSync(temporary, JSON.stringify({ segment, bytes }));
  renameSync(temporary, join(directory, POWER_LOSS_FILE));
}

/** What `losePower` cut: the segment and how many bytes of it were never synced. */
export interface PowerLoss {
  readonly segment: string;
  readonly keptBytes: number;
  readonly lostBytes: number;
}

/**
 * Cuts a stopped replica's log back to what its last note says was durable:
 * the noted segment to its noted length, any later segment to nothing.
 * Undefined when the directory has no note (nothing was ever synced with the
 * journal on, or the directory is gone).
 */
export function losePower(directory: string): PowerLoss | undefined {
  const file = join(directory, POWER_LOSS_FILE);
  if (!existsSync(file)) return undefined;
  const note = journalSchema.parse(JSON.parse(readFileSync(file, "utf8")));
  let lostBytes = 0;
  for (const name of readdirSync(directory).filter((entry) => /^wal-\d+\.log$/.test(entry))) {
    const keep = name === note.segment ? note.bytes : name > note.segment ? 0 : undefined;
    if (keep === undefined) continue;
    const size = statSync(join(directory, name)).size;
    if (size <= keep) continue;
    truncateSync(join(directory, name), keep);
    lostBytes += size - keep;
  }
  return { segment: note.segment, keptBytes: note.bytes, lostBytes };
}
