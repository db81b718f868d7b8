import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: { conditions: ["@synod/source"] },
  ssr: { resolve: { conditions: ["@synod/source"] } },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
  },
});
