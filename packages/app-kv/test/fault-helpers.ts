/**
 * The parts of the fault test (`faults.test.ts`): the register model its
 * histories are checked against and the per-key check (pure, usable offline
 * on a saved history), the seeded fault schedule, and the nemesis that
 * carries a schedule out on a `KvCluster`.
 *
 * The schedule is a pure function of the seed: which faults, in which order,
 * for how long, and which replica among the followers. What real processes
 * make of it (who leads when a fault starts, how many operations land in
 * between) is not deterministic, so a seed replays the faults, not the run.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SeededRandom } from "@synod/core";
import { type CasRegisterInput, type CasRegisterOutput, type Operation, casRegisterModel, checkOperations, formatCheckResult } from "@synod/testkit";
import type { KvCluster } from "./cluster.js";

// ---------------------------------------------------------------------------
// The model: one register per key

/**
 * Each key is testkit's compare-and-set register: `null` is the absent key (a
 * delete writes it), and a failed compare-and-set reports what the key held
 * (`compareAndSet` reads it in the same revision as the compare, in the
 * transaction's `else` branch), which the model checks as a read.
 */
export type { CasRegisterInput as RegisterInput, CasRegisterOutput as RegisterOutput, RegisterValue } from "@synod/testkit";
const registerModel = casRegisterModel;
type RegisterInput = CasRegisterInput;
type RegisterOutput = CasRegisterOutput;

export type RegisterOperation = Operation<RegisterInput, RegisterOutput>;

/** One operation of the recorded history and the key it touched. */
export interface KeyedOperation {
  readonly key: string;
  readonly operation: RegisterOperation;
}

export interface KeyVerdict {
  readonly key: string;
  readonly operations: number;
  readonly verdict: "linearizable" | "not linearizable" | "unknown";
  /** The checker's report (empty when linearizable). */
  readonly report: string;
}

/**
 * Checks the history of every key on its own (keys are independent, so the
 * whole history is linearizable iff every key's is), each within its share
 * of `budgetMs`. A budget overrun is `unknown`, which callers count as a failure.
 */
export function checkKeyHistories(history: readonly KeyedOperation[], budgetMs: number): KeyVerdict[] {
  const byKey = new Map<string, RegisterOperation[]>();
  for (const { key, operation } of history) {
    const operations = byKey.get(key);
    if (operations === undefined) byKey.set(key, [operation]);
    else operations.push(operation);
  }
  const keyBudgetMs = budgetMs / Math.max(1, byKey.size);
  return [...byKey.keys()].sort().map((key) => {
    const operations = byKey.get(key) as RegisterOperation[];
    const result = checkOperations(registerModel, operations, { budget: { milliseconds: keyBudgetMs } });
    return { key, operations: operations.length, verdict: result.verdict, report: result.verdict === "linearizable" ? "" : formatCheckResult(result, registerModel) };
  });
}

/**
 * A checker report cut down for an assertion message: its verdict line, the
 * end of the longest linearizable prefix, and the first operations outside
 * it, which is where the culprit is. (A failing partition can hold thousands
 * of operations; the full report goes with the evidence.)
 */
export function briefReport(report: string, lines = 20): string {
  const all = report.split("\n");
  const split = all.findIndex((line) => line.startsWith("operations of the failing partition"));
  if (split < 0) return report;
  const prefix = all.slice(2, split);
  const outside = all.slice(split + 1).filter((line) => line.startsWith("  *"));
  return [
    all[0],
    `${all[1]}${prefix.length > lines ? ` (the last ${lines})` : ""}`,
    ...prefix.slice(-lines),
    `operations outside the prefix, by call time (the first ${Math.min(lines, outside.length)} of ${outside.length}):`,
    ...outside.slice(0, lines),
  ].join("\n");
}

/** Writes a history as JSON (an open end, `return: Infinity`, as `null`), to check it again offline with `readHistory`. */
export function writeHistory(path: string, header: Record<string, unknown>, history: readonly KeyedOperation[]): void {
  const operations = history.map(({ key, operation }) => ({ key, ...operation, return: Number.isFinite(operation.return) ? operation.return : null }));
  writeFileSync(path, JSON.stringify({ ...header, operations }));
}

/**
 * Writes the history (`history.json`), the checker's full reports
 * (`check-<key>.txt`) and every replica's logs (`<id>.log`) to a new
 * temporary directory, and returns its path.
 */
export function saveEvidence(cluster: KvCluster, header: Record<string, unknown>, history: readonly KeyedOperation[], verdicts: readonly KeyVerdict[]): string {
  const directory = mkdtempSync(join(tmpdir(), "synod-kv-faults-"));
  writeHistory(join(directory, "history.json"), header, history);
  for (const verdict of verdicts) if (verdict.report !== "") writeFileSync(join(directory, `check-${verdict.key}.txt`), verdict.report);
  for (const replica of cluster.replicas) writeFileSync(join(directory, `${replica.id}.log`), replica.logs.join(""));
  return directory;
}

/** The inverse of `writeHistory`. */
export function readHistory(text: string): KeyedOperation[] {
  const parsed = JSON.parse(text) as { operations: (Omit<RegisterOperation, "return"> & { key: string; return: number | null })[] };
  return parsed.operations.map(({ key, return: returned, ...operation }) => ({
    key,
    operation: { ...operation, return: returned ?? Number.POSITIVE_INFINITY },
  }));
}

// ---------------------------------------------------------------------------
// The fault schedule

export type FaultKind = "kill" | "pause" | "pause-two";

/** Which replica a fault strikes: the one leading when it starts, or one of the others. */
export type FaultRole = "leader" | "follower";

export interface FaultStep {
  /**
   * `kill`: SIGKILL, then a restart on the same data directory (`--rejoin`);
   * `pause`: SIGSTOP, then SIGCONT; `pause-two`: SIGSTOP of the leader and one
   * follower at once (no majority: nothing can commit until they resume).
   */
  readonly kind: FaultKind;
  readonly role: FaultRole;
  /** Which follower (index among the non-leaders, by id); also the fallback when no leader is found. For `pause-two`, the second replica. */
  readonly pick: number;
  /** Quiet time before the fault starts. */
  readonly quietMs: number;
  /** How long the replica stays down or paused. */
  readonly holdMs: number;
}

/** What the plan assumes one fault costs beyond its quiet and hold time (finding the leader, a restart). */
const STEP_OVERHEAD_MS = 700;

/**
 * A fault schedule filling about `loadMs`, one fault at a time (a majority is
 * up between faults, and only `pause-two` takes it away, for at most 2.5 s):
 * always a leader kill, a leader pause, a follower kill and a pause of two
 * (which outlasts short client deadlines, so outcomes become unknown), in a
 * seeded order, then seeded extras while time remains.
 */
export function planFaults(random: SeededRandom, loadMs: number): FaultStep[] {
  const between = (low: number, high: number): number => low + random.integer(high - low + 1);
  const step = (kind: FaultKind, role: FaultRole): FaultStep => ({
    kind,
    role,
    pick: random.integer(2),
    quietMs: between(600, 1_800),
    holdMs: kind === "kill" ? between(300, 2_000) : kind === "pause" ? between(500, 2_000) : between(1_200, 2_500),
  });
  const required: [FaultKind, FaultRole][] = [
    ["kill", "leader"],
    ["pause", "leader"],
    ["kill", "follower"],
    ["pause-two", "leader"],
  ];
  const steps = shuffle(random, required).map(([kind, role]) => step(kind, role));
  const cost = (planned: FaultStep): number => planned.quietMs + planned.holdMs + STEP_OVERHEAD_MS;
  let plannedMs = steps.reduce((total, planned) => total + cost(planned), 0);
  for (let extras = 0; extras < 12; extras += 1) {
    const extra = step(random.chance(0.5) ? "kill" : "pause", random.chance(0.5) ? "leader" : "follower");
    if (plannedMs + cost(extra) > loadMs) break;
    steps.splice(random.integer(steps.length + 1), 0, extra);
    plannedMs += cost(extra);
  }
  // The load is under way before the first fault.
  const first = steps[0] as FaultStep;
  steps[0] = { ...first, quietMs: Math.max(first.quietMs, 1_200) };
  return steps;
}

export function describeFault(step: FaultStep): string {
  const follower = `follower#${step.pick}`;
  const whom = step.kind === "pause-two" ? `leader and ${follower}` : step.role === "follower" ? follower : step.role;
  return `${step.kind} ${whom} after ${step.quietMs} ms for ${step.holdMs} ms`;
}

function shuffle<T>(random: SeededRandom, items: readonly T[]): T[] {
  const shuffled = [...items];
  for (let index = shuffled.length - 1; index > 0; index -= 1) {
    const other = random.integer(index + 1);
    [shuffled[index], shuffled[other]] = [shuffled[other] as T, shuffled[index] as T];
  }
  return shuffled;
}

// ---------------------------------------------------------------------------
// The nemesis

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Carries out a fault schedule on a cluster, one fault at a time, and logs what it did and when. */
export class Nemesis {
  /** `+seconds what`, one line per action, for failure messages. */
  readonly log: string[] = [];
  /** How many times each fault struck the leader or a follower, by `kind role`. */
  readonly struck = new Map<string, number>();
  private readonly paused = new Set<string>();
  private stopped = false;
  /** `performance.now()` when `run` started, the origin of the log's times. */
  private origin = performance.now();

  constructor(private readonly cluster: KvCluster) {}

  /** Runs `steps` in order; `stop()` ends the run after the fault in progress heals. */
  async run(steps: readonly FaultStep[]): Promise<void> {
    this.origin = performance.now();
    for (const step of steps) {
      if (this.stopped) return;
      await sleep(step.quietMs);
      await this.strike(step);
    }
  }

  stop(): void {
    this.stopped = true;
  }

  /** Resumes every paused replica and restarts every killed one. */
  async heal(): Promise<void> {
    for (const id of [...this.paused]) this.resume(id);
    for (const replica of this.cluster.replicas) {
      if (replica.child !== undefined) continue;
      this.note(`heal: restart ${replica.id}`);
      await this.cluster.restart(replica.id);
    }
  }

  private async strike(step: FaultStep): Promise<void> {
    const ids = this.cluster.replicas.map((replica) => replica.id).sort();
    const leader = await this.cluster.waitForLeader(4_000).catch(() => undefined);
    const others = ids.filter((id) => id !== leader);
    const follower = others[step.pick % others.length] as string;
    const target = step.role === "leader" && leader !== undefined ? leader : follower;
    const role = (id: string): string => (id === leader ? "leader" : leader === undefined ? "replica, no leader found" : "follower");
    const tally = `${step.kind} ${target === leader ? "leader" : "follower"}`;
    this.struck.set(tally, (this.struck.get(tally) ?? 0) + 1);
    switch (step.kind) {
      case "kill":
        this.note(`SIGKILL ${target} (${role(target)})`);
        await this.cluster.kill(target);
        await sleep(step.holdMs);
        this.note(`restart ${target}`);
        await this.cluster.restart(target);
        this.note(`${target} ready`);
        return;
      case "pause":
        this.pause(target, role(target));
        await sleep(step.holdMs);
        this.resume(target);
        return;
      case "pause-two": {
        const second = target === follower ? (others.find((id) => id !== follower) as string) : follower;
        this.pause(target, role(target));
        this.pause(second, role(second));
        await sleep(step.holdMs);
        this.resume(target);
        this.resume(second);
        return;
      }
    }
  }

  private pause(id: string, role: string): void {
    this.note(`SIGSTOP ${id} (${role})`);
    this.cluster.signal(id, "SIGSTOP");
    this.paused.add(id);
  }

  private resume(id: string): void {
    this.note(`SIGCONT ${id}`);
    this.paused.delete(id);
    if (this.cluster.replica(id).child !== undefined) this.cluster.signal(id, "SIGCONT");
  }

  private note(what: string): void {
    this.log.push(`+${((performance.now() - this.origin) / 1_000).toFixed(2)}s ${what}`);
  }
}
