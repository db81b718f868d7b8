#!/usr/bin/env node
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { LOCK_PLANTED_BUGS } from "@synod/app-lock";
import { PLANTED_BUGS } from "@synod/core";
import { runCampaign } from "./campaign.js";
import { FAULT_KINDS, type FaultKind } from "./nemesis.js";
import { SERVICE_NAMES, type ServiceName } from "./services.js";
import { campaignSummary, summaryLine, writeReport } from "./report/index.js";
import type { RunRecord } from "./run-record.js";

const USAGE = `usage: synod-chaos [--seconds N] [--runs N] [--seed N] [--service kv|lock] [--replicas 3|5] [--faults K,K...] [--out DIR] [--bug NAME]...
       synod-chaos --summarize DIR...   (the figures of the runs whose reports are under DIR)

Runs fault campaigns on real synod-kv and synod-lock processes on loopback:
kills, pauses, partitions, slow and lossy links, bit flips, torn tails, wiped
disks and membership changes, under a recorded client load; checks every
history and writes a report per run.
  --seconds N   seconds of load under faults per run (default 30)
  --runs N      runs, seeds N, N+1, ... (default 1)
  --seed N      the first run's seed (default: random; printed, replays the fault plan)
  --service S   kv (registers, append lists, bank transfers) or lock (locks with fencing);
                default: kv for the first run, then lock, kv, ... in turn
  --replicas R  3 or 5 (default 3)
  --faults K,K  only these fault kinds (default: all of them,
                ${FAULT_KINDS.join(", ")})
  --out DIR     where the reports go (default ./chaos-reports)
  --bug NAME    plant a known bug in every replica, and the campaign should then fail:
                a protocol bug (${PLANTED_BUGS.join(", ")}),
                or the lock service's (${LOCK_PLANTED_BUGS.join(", ")}; implies --service lock)`;

function fail(message: string): never {
  process.stderr.write(`synod-chaos: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function natural(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text)) fail(`--${name} takes a whole number, not ${JSON.stringify(text)}`);
  return Number(text);
}

let values: Record<string, string | boolean | string[] | undefined>;
let positionals: string[] = [];
try {
  ({ values, positionals } = parseArgs({
    args: process.argv.slice(2),
    allowPositionals: true,
    options: { summarize: { type: "boolean" }, service: { type: "string" }, seconds: { type: "string" }, runs: { type: "string" }, seed: { type: "string" }, replicas: { type: "string" }, faults: { type: "string" }, out: { type: "string" }, bug: { type: "string", multiple: true }, help: { type: "boolean" } },
    strict: true,
  }));
} catch (error) {
  fail((error as Error).message);
}
if (positionals.length > 0 && values.summarize !== true) fail(`unexpected argument ${JSON.stringify(positionals[0])}`);
if (values.help === true) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const seconds = natural("seconds", values.seconds as string | undefined, 30);
const runs = natural("runs", values.runs as string | undefined, 1);
const firstSeed = natural("seed", values.seed as string | undefined, Math.floor(Math.random() * 2 ** 31));
const replicas = natural("replicas", values.replicas as string | undefined, 3);
if (replicas !== 3 && replicas !== 5) fail(`--replicas is 3 or 5, not ${replicas}`);
if (seconds < 5) fail("--seconds must be at least 5");
const service = values.service as string | undefined;
if (service !== undefined && !(SERVICE_NAMES as readonly string[]).includes(service)) fail(`--service is ${SERVICE_NAMES.join(" or ")}, not ${JSON.stringify(service)}`);
const faults = (values.faults as string | undefined)?.split(",").map((kind) => kind.trim());
for (const kind of faults ?? []) if (!(FAULT_KINDS as readonly string[]).includes(kind)) fail(`unknown fault kind ${JSON.stringify(kind)}`);
const bugs = (values.bug as string[] | undefined) ?? [];
const lockBugs = bugs.filter((bug) => (LOCK_PLANTED_BUGS as readonly string[]).includes(bug));
for (const bug of bugs) if (!(PLANTED_BUGS as readonly string[]).includes(bug) && !lockBugs.includes(bug)) fail(`unknown bug ${JSON.stringify(bug)}`);
if (lockBugs.length > 0 && service === "kv") fail(`${lockBugs.join(", ")} is a bug of the lock service: not with --service kv`);
const out = resolve(process.env.INIT_CWD ?? process.cwd(), (values.out as string | undefined) ?? "chaos-reports");

if (values.summarize === true) {
  // The figures of runs already made: every run.json under the directories given.
  const found = positionals.flatMap((directory) => runFiles(resolve(process.env.INIT_CWD ?? process.cwd(), directory)));
  if (found.length === 0) fail("--summarize found no run.json under the directories given");
  process.stdout.write(`${campaignSummary(found.map((file) => JSON.parse(readFileSync(file, "utf8")) as RunRecord))}\n`);
  process.exit(0);
}

// Interrupted: exit, and every replica process still running goes with it (testkit kills them on exit).
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130));

let failed = 0;
const records: RunRecord[] = [];
for (let run = 0; run < runs; run += 1) {
  const seed = firstSeed + run;
  const runService = (service ?? (lockBugs.length > 0 ? "lock" : SERVICE_NAMES[run % SERVICE_NAMES.length])) as ServiceName;
  const workDirectory = mkdtempSync(join(tmpdir(), "synod-chaos-"));
  const replay = `pnpm chaos --seed ${seed} --seconds ${seconds} --service ${runService} --replicas ${replicas}${faults === undefined ? "" : ` --faults ${faults.join(",")}`}${bugs.map((bug) => ` --bug ${bug}`).join("")}`;
  try {
    const record = await runCampaign({ seed, seconds, replicas, service: runService, workDirectory, replay, bugs, ...(faults === undefined ? {} : { faults: faults as FaultKind[] }) });
    const written = await writeReport(record, join(out, `${runService}-seed-${seed}${bugs.length === 0 ? "" : `-${bugs.join("+")}`}`));
    process.stdout.write(`${summaryLine(record)}\n  report: ${written.html}\n`);
    records.push(record);
    if (record.checks.some((check) => !check.passed)) failed += 1;
  } catch (error) {
    // The run itself broke (a cluster that never started, say): a failure, and the next run goes on.
    failed += 1;
    // The whole message: a replica that would not start says why in the log lines after the first.
    const lines = (error as Error).message.split("\n");
    const detail = lines.slice(1, 41).map((line) => `    ${line}`).join("\n");
    process.stdout.write(`seed ${seed} · the run stopped: ${lines[0]}\n${detail === "" ? "" : `${detail}\n`}  replay: ${replay}\n`);
  } finally {
    rmSync(workDirectory, { recursive: true, force: true });
  }
}
if (runs > 1 && records.length > 0) process.stdout.write(`${campaignSummary(records)}\n`);
process.stdout.write(`${runs} run${runs === 1 ? "" : "s"}, ${failed} failed\n`);
process.exit(failed === 0 ? 0 : 1);

/** Every `run.json` in `directory` or a directory below it. */
function runFiles(directory: string): string[] {
  if (!existsSync(directory)) fail(`no directory ${directory}`);
  return readdirSync(directory).flatMap((name) => {
    const path = join(directory, name);
    if (statSync(path).isDirectory()) return runFiles(path);
    return name === "run.json" ? [path] : [];
  });
}
