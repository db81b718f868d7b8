import { defineConfig } from "tsup";

export default defineConfig({
  entry: { index: "src/index.ts", "bin/lincheck": "src/bin/lincheck.ts", "bin/sim": "src/bin/sim.ts" },
  format: ["esm"],
  dts: { entry: { index: "src/index.ts" } },
  sourcemap: true,
  clean: true,
  target: "es2022",
});
