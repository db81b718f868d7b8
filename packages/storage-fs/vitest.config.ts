import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: { conditions: ["@synod/source"] },
  ssr: { resolve: { conditions: ["@synod/source"] } },
  test: {
    include: ["test/**/*.test.ts"],
    // The crash test kills and restarts a child process hundreds of times; a hang guard, not a speed target.
    testTimeout: 300_000,
  },
});
