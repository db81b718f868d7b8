#!/usr/bin/env node
// Runs every package's type check and tests through turbo, then prints one
// closing line, "N passed, N failed", summed from each package's vitest JSON
// report of this run. Exits with turbo's exit code.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const packages = readdirSync(join(root, "packages")).map((name) => join(root, "packages", name));
const reports = packages.map((dir) => join(dir, ".vitest-report.json"));
for (const report of reports) rmSync(report, { force: true });

const turbo = spawnSync("pnpm", ["exec", "turbo", "run", "typecheck", "test", "--concurrency=1", ...process.argv.slice(2)], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, TURBO_TELEMETRY_DISABLED: "1" },
});

let passed = 0;
let failed = 0;
let skipped = 0;
for (const report of reports) {
  if (!existsSync(report)) continue;
  const json = JSON.parse(readFileSync(report, "utf8"));
  passed += json.numPassedTests ?? 0;
  failed += json.numFailedTests ?? 0;
  skipped += (json.numPendingTests ?? 0) + (json.numTodoTests ?? 0);
}
const code = turbo.status ?? 1;
if (code !== 0 && failed === 0) failed = 1; // a type error or crash outside any test still fails the run
process.stdout.write(`\ntests: ${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}\n`);
process.exit(code);
