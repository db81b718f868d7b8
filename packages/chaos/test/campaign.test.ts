/**
 * A short campaign on real synod-kv processes, end to end: the faults
 * strike, the checks pass, and the report is written. The long campaigns
 * are `pnpm chaos`; this keeps the runner itself from rotting.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { runCampaign, writeReport } from "../src/index.js";

const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

it("a 12-second campaign on 3 replicas strikes faults, passes every check, and writes its report", { timeout: 120_000 }, async () => {
  const work = mkdtempSync(join(tmpdir(), "synod-chaos-test-"));
  directories.push(work);
  const seed = Number(process.env.SYNOD_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const record = await runCampaign({ seed, seconds: 12, replicas: 3, workDirectory: work, replay: `pnpm chaos --seed ${seed} --seconds 12` });
  const failed = record.checks.filter((check) => !check.passed);
  expect(failed.map((check) => `${check.name}: ${check.detail.slice(0, 2_000)}`).join("\n\n"), `replay: SYNOD_CHAOS_SEED=${seed}`).toBe("");
  expect(record.faults.length).toBeGreaterThanOrEqual(3);
  expect(record.operations.filter((operation) => operation.outcome === "ok").length).toBeGreaterThan(500);
  expect(new Set(record.roles.map((sample) => sample.role))).toContain("leader");
  const written = await writeReport(record, join(work, "report"));
  for (const file of [written.html, ...written.pngs]) expect(existsSync(file), file).toBe(true);
});
