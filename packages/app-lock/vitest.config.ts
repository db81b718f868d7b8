import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: { conditions: ["@synod/source"] },
  ssr: { resolve: { conditions: ["@synod/source"] } },
  test: {
    include: ["test/**/*.test.ts"],
    // The property test drives thousands of seeded commands; a hang guard, not a speed target.
    testTimeout: 120_000,
  },
});
