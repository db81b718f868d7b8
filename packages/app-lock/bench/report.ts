/**
 * Printing: one line per workload and system as it finishes, then one table
 * with a row per figure and, per workload, etcd, Synod and Synod/etcd; the
 * targets as PASS/FAIL lines; the same table in markdown. Nothing here fails
 * the run.
 */
import { type FifoCheck, type SystemName, type Workload, type WorkloadResult, workloadName } from "./load.js";

/** Per workload (by name), the result of each system that ran it. */
export type Results = Map<string, Partial<Record<SystemName, WorkloadResult>>>;

/** Synod's rate on `own` must be at least this many times etcd's. */
export const OWN_RATE_TARGET = 10;
/** Synod's p99 on `one` must stay under this. */
export const ONE_P99_TARGET_MS = 50;

function fixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "–";
}

function grouped(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "–";
}

function times(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : "–";
}

export function formatFifo(fifo: FifoCheck | undefined): string {
  if (fifo === undefined) return "n/a (no queue)";
  if (fifo.unknown !== undefined) return `unknown: ${fifo.unknown}`;
  const counts = `${fifo.grants} grants, ${fifo.fromQueue} to the queue's head`;
  return fifo.violations === 0 ? `FIFO (${counts})` : `NOT FIFO: ${fifo.violations} of ${fifo.grants} out of order; first: ${fifo.firstViolation ?? "?"}`;
}

export function formatLine(system: SystemName, workload: Workload, result: WorkloadResult): string {
  const notes = [
    result.refusedPerOp > 0 ? `refused acquires ${fixed(result.refusedPerOp, 2)}/op` : "",
    result.fifo === undefined ? "" : formatFifo(result.fifo),
    result.errors > 0 ? `errors ${result.errors} (first: ${result.firstError ?? "?"})` : "",
    result.drainTimedOut ? "some cycles were still pending 15 s after the window" : "",
  ].filter((note) => note !== "");
  return [
    system.padEnd(6),
    workloadName(workload).padEnd(20),
    `${grouped(result.opsPerSecond).padStart(7)} acq+rel/s`,
    `p50 ${fixed(result.p50Ms, 3).padStart(7)} ms`,
    `p99 ${fixed(result.p99Ms, 3).padStart(7)} ms`,
    `client ${fixed(result.clientCpuMicrosPerOp, 1).padStart(6)} µs/op`,
    `servers ${fixed(result.serversCpuMicrosPerOp, 1).padStart(6)} µs/op`,
    `others ${fixed(result.otherCores, 2)} cores`,
    `(${result.ops} in ${result.seconds.toFixed(2)} s; per client ${result.perWorkerMin}–${result.perWorkerMax})`,
    ...notes,
  ].join("  ");
}

interface Figure {
  readonly label: string;
  readonly value: (result: WorkloadResult) => number;
  readonly format: (value: number) => string;
  /** Whether a Synod/etcd ratio means anything for it. */
  readonly ratio: boolean;
}

const FIGURES: readonly Figure[] = [
  { label: "acquire+release /s", value: (result) => result.opsPerSecond, format: grouped, ratio: true },
  { label: "p50 ms", value: (result) => result.p50Ms, format: (value) => fixed(value, 3), ratio: true },
  { label: "p99 ms", value: (result) => result.p99Ms, format: (value) => fixed(value, 3), ratio: true },
  { label: "client CPU µs/op", value: (result) => result.clientCpuMicrosPerOp, format: (value) => fixed(value, 1), ratio: true },
  { label: "servers CPU µs/op", value: (result) => result.serversCpuMicrosPerOp, format: (value) => fixed(value, 1), ratio: true },
  { label: "refused acquires /op", value: (result) => result.refusedPerOp, format: (value) => fixed(value, 2), ratio: false },
  { label: "fewest cycles of a client", value: (result) => result.perWorkerMin, format: grouped, ratio: false },
  { label: "most cycles of a client", value: (result) => result.perWorkerMax, format: grouped, ratio: false },
  { label: "others' cores", value: (result) => result.otherCores, format: (value) => fixed(value, 2), ratio: false },
];

/** The header and rows of the comparison: a row per figure, three columns per workload. */
function table(workloads: readonly Workload[], results: Results): string[][] {
  const header = ["", ...workloads.flatMap((workload) => [`etcd: ${workloadName(workload)}`, `Synod: ${workloadName(workload)}`, "Synod/etcd"])];
  const rows = FIGURES.map((figure) => [
    figure.label,
    ...workloads.flatMap((workload) => {
      const { etcd, synod } = results.get(workloadName(workload)) ?? {};
      const etcdValue = etcd === undefined ? Number.NaN : figure.value(etcd);
      const synodValue = synod === undefined ? Number.NaN : figure.value(synod);
      return [figure.format(etcdValue), figure.format(synodValue), figure.ratio ? times(synodValue / etcdValue) : ""];
    }),
  ]);
  const order = [
    "grant order",
    ...workloads.flatMap((workload) => {
      const { etcd, synod } = results.get(workloadName(workload)) ?? {};
      const describe = (result: WorkloadResult | undefined) => (result === undefined ? "–" : workload.kind === "one" ? formatFifo(result.fifo).replace(/ \(.*\)$/, "") : "");
      return [describe(etcd), describe(synod), ""];
    }),
  ];
  return [header, ...rows, order];
}

/** The comparison in aligned columns, for the terminal. */
export function formatComparison(workloads: readonly Workload[], results: Results): string {
  const lines = table(workloads, results);
  const columns = lines[0]?.length ?? 0;
  const widths = Array.from({ length: columns }, (_, column) => Math.max(...lines.map((cells) => (cells[column] ?? "").length)));
  return lines.map((cells) => cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0))).join("  ").trimEnd()).join("\n");
}

export function formatMarkdown(workloads: readonly Workload[], results: Results): string {
  const [header = [], ...rows] = table(workloads, results);
  return [`| ${header.join(" | ")} |`, `|${header.map((_, column) => (column === 0 ? "---" : "---:")).join("|")}|`, ...rows.map((cells) => `| ${cells.join(" | ")} |`)].join("\n");
}

/** A warning when other jobs kept the cores busy during some window (the figures are then disturbed). */
export function formatDisturbance(results: Results, thresholdCores = 0.2): string | undefined {
  const disturbed: string[] = [];
  for (const [name, systems] of results) {
    for (const [system, result] of Object.entries(systems)) {
      if (result !== undefined && result.otherCores > thresholdCores) disturbed.push(`${system} ${name} (${result.otherCores.toFixed(2)} cores)`);
    }
  }
  return disturbed.length === 0 ? undefined : `WARNING: other processes used more than ${thresholdCores} cores during: ${disturbed.join(", ")}. Rerun on a quiet machine.`;
}

/** The targets, as PASS/FAIL (or SKIP) lines. */
export function formatTargets(workloads: readonly Workload[], results: Results): string[] {
  const lines: string[] = [];
  const own = workloads.find((workload) => workload.kind === "own");
  if (own !== undefined) {
    const target = `Synod acquire+release/s with ${workloadName(own)} ≥ ${OWN_RATE_TARGET}× etcd's`;
    const { etcd, synod } = results.get(workloadName(own)) ?? {};
    if (etcd === undefined || synod === undefined) lines.push(`SKIP  ${target} (${etcd === undefined ? "etcd" : "Synod"} was not measured)`);
    else {
      const ratio = synod.opsPerSecond / etcd.opsPerSecond;
      lines.push(`${ratio >= OWN_RATE_TARGET ? "PASS" : "FAIL"}  ${target}: ${grouped(synod.opsPerSecond)} vs ${grouped(etcd.opsPerSecond)} = ${times(ratio)}`);
    }
  }
  const one = workloads.find((workload) => workload.kind === "one");
  if (one !== undefined) {
    const target = `Synod with ${workloadName(one)}: grants FIFO and p99 < ${ONE_P99_TARGET_MS} ms`;
    const synod = results.get(workloadName(one))?.synod;
    if (synod === undefined) lines.push(`SKIP  ${target} (Synod was not measured)`);
    else {
      const fifo = synod.fifo !== undefined && synod.fifo.unknown === undefined && synod.fifo.violations === 0 && synod.fifo.fromQueue > 0;
      const pass = fifo && synod.p99Ms < ONE_P99_TARGET_MS && synod.errors === 0;
      const errors = synod.errors > 0 ? `; ${synod.errors} errors` : "";
      lines.push(`${pass ? "PASS" : "FAIL"}  ${target}: ${formatFifo(synod.fifo)}; p99 ${fixed(synod.p99Ms, 3)} ms${errors}`);
    }
  }
  return lines;
}
