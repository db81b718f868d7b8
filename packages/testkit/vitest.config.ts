import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: { conditions: ["@synod/source"] },
  ssr: { resolve: { conditions: ["@synod/source"] } },
  test: {
    include: ["test/**/*.test.ts"],
    // Simulation suites run hundreds of seeds; this is a hang guard, not a speed target.
    testTimeout: 600_000,
  },
});
