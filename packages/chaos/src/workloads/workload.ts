import type { SeededRandom } from "@synod/core";
import { type CheckResult as LinearizabilityResult, type Model, type Operation, formatCheckResult, formatShrunk, shrinkFailure } from "@synod/testkit";
import type { CheckResult, OperationRecord } from "../run-record.js";

/** Where a workload's clients connect and the run's clock. */
export interface WorkloadContext {
  /** The replicas' client URLs (each one's fault proxy). */
  readonly urls: readonly string[];
  /** Milliseconds since the run began: the clock of every record. */
  readonly clock: () => number;
}

/**
 * One client workload of a run: it opens its own clients, runs its workers
 * while the faults strike, joins a final read to its history once they
 * healed, and then checks what it recorded.
 */
export interface Workload {
  /** `register`, `append`, `bank`, `lock`...: the `workload` of its records. */
  readonly name: string;
  /** Every operation it issued, for the report. */
  readonly records: readonly OperationRecord[];
  /** Runs its workers until `running()` turns false; resolves when every worker has stopped. */
  run(random: SeededRandom, running: () => boolean): Promise<void>;
  /** After every fault healed and the workers stopped: final reads that join the history (nothing acknowledged may be lost). */
  finish(): Promise<void>;
  /** Its verdicts; `budgetMs` bounds the linearizability search (an `unknown` verdict fails). */
  check(budgetMs: number): CheckResult[];
  /** Closes every client it opened. */
  close(): Promise<void>;
}

/** How an operation ended: `ok`, `fail` (it certainly did not take effect), `unknown` (it may have). */
export type Outcome = OperationRecord["outcome"];

/**
 * Calls `call` and records it for the report: its outcome decided by
 * `classify` from the error it threw (an error `classify` does not know is
 * rethrown: a bug in the workload, not a fault).
 */
export async function recorded<T>(
  records: OperationRecord[],
  workload: string,
  kind: string,
  clock: () => number,
  classify: (error: unknown) => "fail" | "unknown" | undefined,
  call: () => Promise<T>,
): Promise<{ readonly outcome: Outcome; readonly value: T | undefined; readonly error: unknown; readonly start: number; readonly end: number }> {
  const start = clock();
  let value: T | undefined;
  let outcome: Outcome;
  let failure: unknown;
  try {
    value = await call();
    outcome = "ok";
  } catch (error) {
    const verdict = classify(error);
    if (verdict === undefined) throw error;
    outcome = verdict;
    failure = error;
  }
  const end = clock();
  const code = failure === undefined ? undefined : errorCode(failure);
  records.push({ workload, kind, start, end: outcome === "unknown" ? undefined : end, outcome, ...(code === undefined ? {} : { error: code }) });
  return { outcome, value, error: failure, start, end };
}

/** An error's stable code when it has one, else its class's name. */
function errorCode(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" ? code : (error as { name?: unknown }).name === undefined ? undefined : String((error as { name?: unknown }).name);
}

/**
 * What a failed linearizability check shows: the shortest failing part of
 * the history the shrinker finds within `budgetMs` (operations removed while
 * it stays non-linearizable, never one whose effect another observed), or,
 * if it cannot start, the checker's own account.
 */
export function explainFailure<State, Input, Output>(model: Model<State, Input, Output>, operations: readonly Operation<Input, Output>[], result: LinearizabilityResult<Input, Output>, budgetMs = 3_000): string {
  if (result.verdict !== "not linearizable") return formatCheckResult(result, model);
  try {
    const shrunk = shrinkFailure(model, operations, { failure: result, budget: { milliseconds: budgetMs } });
    return `the shortest failing part found: ${shrunk.operations.length} of ${shrunk.originalCount} operations${shrunk.finished ? "" : " (the shrinker's time ran out)"}\n${formatShrunk(shrunk, model)}`;
  } catch {
    return formatCheckResult(result, model);
  }
}
