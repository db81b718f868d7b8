/**
 * Runs every scenario in `testdata/*.txt` (see `harness.ts` for the commands).
 * With `SYNOD_REWRITE=1` the expected outputs are rewritten from the actual
 * ones instead of compared: review the diff before committing it.
 */
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { runScenarioFile } from "./harness.js";

const directory = fileURLToPath(new URL("./testdata/", import.meta.url));
const rewrite = process.env.SYNOD_REWRITE === "1";

describe("replica scenarios", () => {
  const files = readdirSync(directory)
    .filter((file) => file.endsWith(".txt"))
    .sort();
  for (const file of files) {
    it(file, () => {
      const path = `${directory}${file}`;
      const expected = readFileSync(path, "utf8");
      const actual = runScenarioFile(expected);
      if (rewrite) writeFileSync(path, actual);
      else expect(actual).toBe(expected);
    });
  }
});
