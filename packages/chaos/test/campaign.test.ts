/**
 * The campaign end to end, on real processes. `pnpm chaos --seconds 120` is
 * the short campaign CI runs (issue 9): run here as a user runs it, the
 * command line and its exit code included. A shorter run of the lock
 * service keeps the other service's workload in CI too. Longer campaigns
 * are `pnpm chaos --runs N`.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, expect, it } from "vitest";
import { FAULT_KINDS, runCampaign, writeReport } from "../src/index.js";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

function seedFrom(variable: string): number {
  return Number(process.env[variable] ?? Math.floor(Math.random() * 2 ** 31));
}

/** Runs `pnpm ARGS...` at the repository's root, killed (by its PID) after `timeoutMs`. */
function pnpm(args: readonly string[], timeoutMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("pnpm", args, { cwd: root, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    }, timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** The failed checks of every run reported under `out`, with their details: the report itself is removed after the test. */
function failedChecks(out: string): string {
  return readdirSync(out)
    .filter((name) => existsSync(join(out, name, "run.json")))
    .flatMap((name) => {
      const run = JSON.parse(readFileSync(join(out, name, "run.json"), "utf8")) as { checks: { name: string; passed: boolean; detail: string }[] };
      return run.checks.filter((check) => !check.passed).map((check) => `${name}: FAILED ${check.name}\n${check.detail.slice(0, 4_000)}`);
    })
    .join("\n\n");
}

it("`pnpm chaos --seconds 120` (app-kv: registers, append lists, bank transfers; every kind of fault) passes and writes its report", { timeout: 600_000 }, async () => {
  const out = mkdtempSync(join(tmpdir(), "synod-chaos-cli-"));
  directories.push(out);
  const seed = seedFrom("SYNOD_CHAOS_SEED");
  const { code, output } = await pnpm(["chaos", "--seconds", "120", "--seed", String(seed), "--out", out], 540_000);
  console.log(output.trim().split("\n").slice(-4).join("\n"));
  if (code !== 0) console.log(failedChecks(out));
  expect(code, `replay: SYNOD_CHAOS_SEED=${seed}\n${output.slice(-6_000)}`).toBe(0);
  expect(output).toContain("1 run, 0 failed");
  const [report] = readdirSync(out);
  expect(report).toBe(`kv-seed-${seed}`);
  const run = JSON.parse(readFileSync(join(out, report as string, "run.json"), "utf8")) as { faults: { kind: string }[]; operations: { workload: string; outcome: string }[] };
  // Every kind of fault struck at least once (the plan draws each kind first), membership changes included.
  expect(new Set(run.faults.map((fault) => fault.kind))).toContain("membership");
  expect(new Set(run.faults.map((fault) => fault.kind)).size).toBeGreaterThanOrEqual(FAULT_KINDS.length - 2);
  for (const workload of ["register", "append", "bank"]) expect(run.operations.filter((operation) => operation.workload === workload && operation.outcome === "ok").length, workload).toBeGreaterThan(100);
  for (const file of ["report.html", "latency.png", "throughput.png", "roles.png"]) expect(existsSync(join(out, report as string, file)), file).toBe(true);
});

it("a 20-second campaign on the lock service: locks granted, fenced writes in token order, every check passes", { timeout: 180_000 }, async () => {
  const work = mkdtempSync(join(tmpdir(), "synod-chaos-test-"));
  directories.push(work);
  const seed = seedFrom("SYNOD_CHAOS_LOCK_SEED");
  const record = await runCampaign({ seed, seconds: 20, replicas: 3, service: "lock", workDirectory: work, replay: `pnpm chaos --seed ${seed} --seconds 20 --service lock` });
  const failed = record.checks.filter((check) => !check.passed);
  expect(failed.map((check) => `${check.name}: ${check.detail.slice(0, 2_000)}`).join("\n\n"), `replay: SYNOD_CHAOS_LOCK_SEED=${seed}`).toBe("");
  expect(record.faults.length).toBeGreaterThanOrEqual(5);
  expect(record.operations.filter((operation) => operation.kind === "acquire" && operation.outcome === "ok").length).toBeGreaterThan(20);
  expect(record.operations.filter((operation) => operation.kind === "fenced write").length).toBeGreaterThan(20);
  expect(record.checks.map((check) => check.name)).toContain("lock L0: one holder at a time");
  const written = await writeReport(record, join(work, "report"));
  for (const file of [written.html, ...written.pngs]) expect(existsSync(file), file).toBe(true);
});
