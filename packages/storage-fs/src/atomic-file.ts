import { type FileHandle, open, rename, rm } from "node:fs/promises";
import { join } from "node:path";

/** fsyncs a directory, so that a rename or unlink in it is durable. */
export async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `name` in `directory` with `content` atomically: a reader after a
 * crash finds either the old file or the new one, whole. Writes a temporary
 * file, fsyncs it, renames it over the target, and fsyncs the directory.
 */
export async function writeFileAtomically(directory: string, name: string, content: Uint8Array | readonly Uint8Array[]): Promise<void> {
  await writeFileAtomicallyWith(directory, name, async (handle) => {
    if (content instanceof Uint8Array) await handle.write(content);
    else await handle.writev([...content]);
  });
}

/** `writeFileAtomically` for content that `write` produces as it goes (a stream too large to hold). */
export async function writeFileAtomicallyWith<T>(directory: string, name: string, write: (handle: FileHandle) => Promise<T>): Promise<T> {
  const temporary = join(directory, `${name}.tmp`);
  const handle = await open(temporary, "w");
  let result: T;
  try {
    result = await write(handle);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temporary, { force: true });
    throw error;
  }
  await handle.close();
  await rename(temporary, join(directory, name));
  await syncDirectory(directory);
  return result;
}
