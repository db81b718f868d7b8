/**
 * Printing: one line per workload and system as it finishes, then the two
 * systems side by side with the Synod/etcd ratios, the targets as PASS/FAIL
 * lines, and a markdown table. Nothing here fails the run.
 */
import { median } from "@synod/testkit";
import { type Workload, type WorkloadResult, workloadName } from "./load.js";

export type SystemName = "etcd" | "synod";

/** All repetitions of one workload on one system (one unless BENCH_REPS > 1). */
export type Repetitions = readonly WorkloadResult[];

/** Per-workload results of both systems; a system that was skipped has none. */
export type Results = Map<string, Partial<Record<SystemName, Repetitions>>>;

/** The median of one figure over the repetitions. */
function figure(reps: Repetitions | undefined, pick: (result: WorkloadResult) => number): number {
  return reps === undefined ? Number.NaN : median(reps.map(pick));
}

function fixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "–";
}

function grouped(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "–";
}

function ratio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : "–";
}

export function formatLine(system: SystemName, workload: Workload, result: WorkloadResult): string {
  const notes = [
    result.errors > 0 ? `errors ${result.errors} (first: ${result.firstError ?? "?"})` : "",
    result.casFailures > 0 ? `CAS not applied ${result.casFailures}` : "",
    result.drainTimedOut ? "some operations were still pending 15 s after the window" : "",
  ].filter((note) => note !== "");
  return [
    system.padEnd(6),
    workloadName(workload).padEnd(10),
    `${grouped(result.opsPerSecond).padStart(8)} ops/s`,
    `p50 ${fixed(result.p50Ms, 3).padStart(7)} ms`,
    `p99 ${fixed(result.p99Ms, 3).padStart(7)} ms`,
    `client ${fixed(result.clientCpuMicrosPerOp, 1).padStart(6)} µs/op`,
    `servers ${fixed(result.serversCpuMicrosPerOp, 1).padStart(6)} µs/op`,
    `others ${fixed(result.otherCores, 2)} cores`,
    `(${result.ops} ops in ${result.seconds.toFixed(2)} s)`,
    ...notes,
  ].join("  ");
}

interface Row {
  readonly name: string;
  readonly cells: readonly string[];
}

const COLUMNS = [
  "workload",
  "etcd ops/s",
  "Synod ops/s",
  "Synod/etcd ops/s",
  "etcd p50 ms",
  "Synod p50 ms",
  "Synod/etcd p50",
  "etcd p99 ms",
  "Synod p99 ms",
  "etcd client µs/op",
  "Synod client µs/op",
  "etcd servers µs/op",
  "Synod servers µs/op",
] as const;

function rows(workloads: readonly Workload[], results: Results): Row[] {
  return workloads.map((workload) => {
    const name = workloadName(workload);
    const { etcd, synod } = results.get(name) ?? {};
    const ops = (reps: Repetitions | undefined): number => figure(reps, (result) => result.opsPerSecond);
    const p50 = (reps: Repetitions | undefined): number => figure(reps, (result) => result.p50Ms);
    return {
      name,
      cells: [
        name,
        grouped(ops(etcd)),
        grouped(ops(synod)),
        ratio(ops(synod) / ops(etcd)),
        fixed(p50(etcd), 3),
        fixed(p50(synod), 3),
        ratio(p50(synod) / p50(etcd)),
        fixed(figure(etcd, (result) => result.p99Ms), 3),
        fixed(figure(synod, (result) => result.p99Ms), 3),
        fixed(figure(etcd, (result) => result.clientCpuMicrosPerOp), 1),
        fixed(figure(synod, (result) => result.clientCpuMicrosPerOp), 1),
        fixed(figure(etcd, (result) => result.serversCpuMicrosPerOp), 1),
        fixed(figure(synod, (result) => result.serversCpuMicrosPerOp), 1),
      ],
    };
  });
}

/** The side-by-side comparison in aligned columns, for the terminal. */
export function formatComparison(workloads: readonly Workload[], results: Results): string {
  const table = [COLUMNS as readonly string[], ...rows(workloads, results).map((row) => row.cells)];
  const widths = COLUMNS.map((_, column) => Math.max(...table.map((cells) => (cells[column] ?? "").length)));
  return table.map((cells) => cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0))).join("  ")).join("\n");
}

export function formatMarkdown(workloads: readonly Workload[], results: Results): string {
  const header = `| ${COLUMNS.join(" | ")} |`;
  const rule = `|${COLUMNS.map((_, column) => (column === 0 ? "---" : "---:")).join("|")}|`;
  return [header, rule, ...rows(workloads, results).map((row) => `| ${row.cells.join(" | ")} |`)].join("\n");
}

/** A warning when other jobs kept the cores busy during some window (the figures are then disturbed). */
export function formatDisturbance(results: Results, thresholdCores = 0.2): string | undefined {
  const disturbed: string[] = [];
  for (const [name, systems] of results) {
    for (const [system, reps] of Object.entries(systems)) {
      const worst = Math.max(...(reps ?? []).map((result) => result.otherCores));
      if (worst > thresholdCores) disturbed.push(`${system} ${name} (${worst.toFixed(2)} cores)`);
    }
  }
  return disturbed.length === 0 ? undefined : `WARNING: other processes used more than ${thresholdCores} cores during: ${disturbed.join(", ")}. Rerun on a quiet machine.`;
}

/** The targets of the issue, as PASS/FAIL (or SKIP) lines. */
export function formatTargets(results: Results): string[] {
  const lines: string[] = [];
  const synodPut1 = results.get("put c=1")?.synod;
  const p50 = figure(synodPut1, (result) => result.p50Ms);
  lines.push(
    synodPut1 === undefined
      ? "SKIP  Synod put p50 at concurrency 1 ≤ 0.5 ms (Synod was not measured)"
      : `${p50 <= 0.5 ? "PASS" : "FAIL"}  Synod put p50 at concurrency 1 ≤ 0.5 ms: ${fixed(p50, 3)} ms`,
  );
  for (const concurrency of [64, 256]) {
    const { etcd, synod } = results.get(`put c=${concurrency}`) ?? {};
    const target = `Synod put throughput at concurrency ${concurrency} ≥ 3× etcd's`;
    if (etcd === undefined || synod === undefined) {
      lines.push(`SKIP  ${target} (${etcd === undefined ? "etcd" : "Synod"} was not measured)`);
      continue;
    }
    const synodOps = figure(synod, (result) => result.opsPerSecond);
    const etcdOps = figure(etcd, (result) => result.opsPerSecond);
    const times = synodOps / etcdOps;
    lines.push(`${times >= 3 ? "PASS" : "FAIL"}  ${target}: ${grouped(synodOps)} vs ${grouped(etcdOps)} ops/s = ${ratio(times)}`);
  }
  return lines;
}
