import { MemoryStorage } from "../src/index.js";
import { runStorageConformance } from "../src/testing/index.js";

runStorageConformance("MemoryStorage", {
  create: async () => new MemoryStorage(),
  reopen: async (storage) => {
    await storage.close();
    (storage as MemoryStorage).reopen();
    return storage;
  },
});
