import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: { conditions: ["@synod/source"] },
  ssr: { resolve: { conditions: ["@synod/source"] } },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    // The campaigns start clusters of real processes: one file at a time, so nothing else competes with them.
    fileParallelism: false,
  },
});
