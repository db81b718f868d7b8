import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Storage } from "@synod/core";
import { runStorageConformance } from "@synod/core/testing";
import { FileStorage } from "../src/index.js";

const directories = new Map<Storage, string>();

runStorageConformance("FileStorage", {
  create: async () => {
    const directory = mkdtempSync(join(tmpdir(), "synod-fs-"));
    const storage = await FileStorage.open(directory, { nodeId: "a" });
    directories.set(storage, directory);
    return storage;
  },
  reopen: async (storage) => {
    const directory = directories.get(storage) as string;
    await storage.close();
    const reopened = await FileStorage.open(directory, { nodeId: "a", expectExisting: true });
    directories.set(reopened, directory);
    return reopened;
  },
  destroy: async (storage) => {
    await storage.close();
    rmSync(directories.get(storage) as string, { recursive: true, force: true });
  },
});
