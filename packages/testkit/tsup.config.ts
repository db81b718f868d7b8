import { defineConfig } from "tsup";

export default defineConfig({
  entry: { index: "src/index.ts", processes: "src/processes.ts", "bin/lincheck": "src/bin/lincheck.ts", "bin/sim": "src/bin/sim.ts" },
  format: ["esm"],
  dts: { entry: { index: "src/index.ts", processes: "src/processes.ts" } },
  sourcemap: true,
  clean: true,
  target: "es2022",
});
