#!/usr/bin/env node
/** Executable wrapper of `synod-lincheck`; the logic lives in `../lincheck/cli.ts`. */

import { readFileSync } from "node:fs";
import { runLincheckCli } from "../lincheck/cli.js";

process.exitCode = runLincheckCli(process.argv.slice(2), {
  writeOut: (line) => process.stdout.write(`${line}\n`),
  writeError: (line) => process.stderr.write(`${line}\n`),
  readTextFile: (path) => readFileSync(path, "utf8"),
});
