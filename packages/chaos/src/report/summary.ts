/** What a run amounts to, in figures: its verdict and its operations and faults counted. */
import type { CheckResult, FaultWindow, OperationRecord, RunRecord } from "../run-record.js";

/** `UNCHECKED`: no check ran, so the run proves nothing either way. */
export type Verdict = "PASS" | "FAIL" | "UNCHECKED";

export function verdict(checks: readonly CheckResult[]): Verdict {
  if (checks.length === 0) return "UNCHECKED";
  return checks.every((check) => check.passed) ? "PASS" : "FAIL";
}

export type OutcomeCounts = Record<OperationRecord["outcome"], number>;

export function outcomeCounts(operations: readonly OperationRecord[]): OutcomeCounts {
  const counts: OutcomeCounts = { ok: 0, fail: 0, unknown: 0 };
  for (const operation of operations) counts[operation.outcome] += 1;
  return counts;
}

/** How many faults of each kind, most first, ties by kind. */
export function faultCounts(faults: readonly FaultWindow[]): [kind: string, count: number][] {
  const counts = new Map<string, number>();
  for (const fault of faults) counts.set(fault.kind, (counts.get(fault.kind) ?? 0) + 1);
  return [...counts].sort(([kindA, countA], [kindB, countB]) => countB - countA || kindA.localeCompare(kindB));
}

/** Milliseconds as seconds with one decimal: `12.3 s`. */
export function formatSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * The run in one line for the terminal, e.g.
 * `seed 42 · app-kv, 3 replicas · 60.0 s · 812 operations (780 ok, 28 fail, 4 unknown) · 5 faults (3 kill, 2 partition) · FAIL: linearizable`.
 */
export function summaryLine(record: RunRecord): string {
  const outcomes = outcomeCounts(record.operations);
  const faults = faultCounts(record.faults).map(([kind, count]) => `${count} ${kind}`);
  const failed = record.checks.filter((check) => !check.passed).map((check) => check.name);
  const result = verdict(record.checks);
  return [
    `seed ${record.seed}`,
    record.system,
    formatSeconds(record.durationMs),
    `${record.operations.length} operations (${outcomes.ok} ok, ${outcomes.fail} fail, ${outcomes.unknown} unknown)`,
    faults.length === 0 ? "no faults" : `${record.faults.length} faults (${faults.join(", ")})`,
    result === "FAIL" ? `FAIL: ${failed.join(", ")}` : result === "PASS" ? `PASS (${record.checks.length} checks)` : "UNCHECKED (no checks ran)",
  ].join(" · ");
}

/**
 * A campaign in figures, for the terminal and a release note: runs and how
 * many passed, faults injected by kind, and operations checked per workload
 * (with their outcomes).
 */
export function campaignSummary(records: readonly RunRecord[]): string {
  const passed = records.filter((record) => verdict(record.checks) === "PASS").length;
  const faults = faultCounts(records.flatMap((record) => record.faults));
  const byWorkload = new Map<string, OperationRecord[]>();
  for (const record of records) {
    for (const operation of record.operations) {
      const list = byWorkload.get(operation.workload) ?? [];
      if (list.length === 0) byWorkload.set(operation.workload, list);
      list.push(operation);
    }
  }
  const operations = records.reduce((sum, record) => sum + record.operations.length, 0);
  const systems = new Map<string, number>();
  for (const record of records) systems.set(record.system, (systems.get(record.system) ?? 0) + 1);
  const lines = [
    `${records.length} runs (${[...systems].map(([system, count]) => `${count} × ${system}`).join(", ")}): ${passed} passed, ${records.length - passed} failed; ${formatSeconds(records.reduce((sum, record) => sum + record.durationMs, 0))} in all`,
    `faults: ${faults.reduce((sum, [, count]) => sum + count, 0)} (${faults.map(([kind, count]) => `${count} ${kind}`).join(", ")}); ${substituted(records)} of them struck with every disk spared (a plain kill, or a power loss) because a replica was rebuilding or out of the configuration`,
    `operations: ${operations}`,
    ...[...byWorkload].map(([workload, list]) => {
      const outcomes = outcomeCounts(list);
      return `  ${workload}: ${list.length} (${outcomes.ok} ok, ${outcomes.fail} fail, ${outcomes.unknown} unknown)`;
    }),
  ];
  return lines.join("\n");
}

/** Disk and membership faults the nemesis struck sparing every disk (as plain kills, or a power loss keeping the leader's disk): too few trusted voters would have been left. */
function substituted(records: readonly RunRecord[]): number {
  return records.reduce((sum, record) => sum + record.faults.filter((fault) => /\((disk spared|killed instead)/.test(fault.target)).length, 0);
}
