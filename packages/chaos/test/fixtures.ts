/** A synthetic run record for the report's tests: no cluster, just plausible data. */
import type { FaultWindow, OperationRecord, RoleSample, RunRecord } from "../src/run-record.js";

export const FAULTS: readonly FaultWindow[] = [
  { kind: "kill", target: "n1", start: 10_000, end: 16_000 },
  { kind: "partition", target: "n1|n2,n3", start: 25_000, end: 33_000 },
  { kind: "pause", target: "n3", start: 40_000, end: 44_000 },
];

/** A 60 s run of two workloads on three replicas: 360 operations, slow or failing during the faults, and the roles changing with them. */
export function syntheticRecord(): RunRecord {
  let state = 12345;
  const random = (): number => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  const operations: OperationRecord[] = [];
  for (let index = 0; index < 360; index += 1) {
    const start = index * 166;
    const faulted = FAULTS.some((fault) => start >= fault.start && start < fault.end);
    const roll = random();
    const outcome = faulted && roll < 0.3 ? "fail" : faulted && roll < 0.4 ? "unknown" : "ok";
    const latency = faulted ? 50 + random() * 2000 : 0.5 + random() * 20;
    operations.push({
      workload: index % 3 === 0 ? "bank" : "register",
      kind: index % 2 === 0 ? "read" : "write",
      start,
      end: outcome === "unknown" ? undefined : start + latency,
      outcome,
    });
  }
  const roles: RoleSample[] = [
    { node: "n1", time: 0, role: "leader" },
    { node: "n2", time: 0, role: "follower" },
    { node: "n3", time: 0, role: "follower" },
    { node: "n1", time: 10_000, role: "down" },
    { node: "n2", time: 10_500, role: "candidate" },
    { node: "n2", time: 11_000, role: "leader" },
    { node: "n1", time: 16_000, role: "rebuilding" },
    { node: "n1", time: 18_000, role: "follower" },
    { node: "n3", time: 40_000, role: "paused" },
    { node: "n3", time: 44_000, role: "follower" },
  ];
  return {
    seed: 42,
    system: "app-kv, 3 replicas",
    durationMs: 60_000,
    operations,
    faults: FAULTS,
    roles,
    checks: [
      { name: "linearizable", passed: false, detail: 'read -> "<script>alert(1)</script>" & more' },
      { name: "bank total", passed: true, detail: "every read summed to 1000" },
    ],
    replay: "pnpm chaos --seed 42 --seconds 60",
  };
}
