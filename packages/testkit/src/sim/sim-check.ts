import { type CheckResult, type Operation, casRegisterModel, checkOperations, formatCheckResult, keyValueModel } from "../lincheck/index.js";
import type { HistoryRecord } from "./sim-client.js";

export interface HistoryVerdict {
  readonly model: "kv" | "cas-register";
  readonly operations: number;
  readonly verdict: CheckResult<unknown, unknown>["verdict"];
  readonly detail: string;
}

/**
 * Checks a simulation's client histories: the KV operations (partitioned by
 * key) and the compare-and-set register. A budget overrun is `unknown`,
 * which the caller counts as a failure.
 */
export function checkHistories(records: readonly HistoryRecord[], budgetMs: number): HistoryVerdict[] {
  const kv: Operation<Extract<HistoryRecord, { model: "kv" }>["input"], Extract<HistoryRecord, { model: "kv" }>["output"] & {}>[] = [];
  const cas: Operation<Extract<HistoryRecord, { model: "cas" }>["input"], Extract<HistoryRecord, { model: "cas" }>["output"] & {}>[] = [];
  for (const record of records) {
    // A read that never returned had no effect: leave it out.
    if (record.output === undefined && (record.input.kind === "get" || record.input.kind === "read")) continue;
    const operation = { clientId: record.client, call: record.call, return: record.return };
    if (record.model === "kv") kv.push({ ...operation, input: record.input, output: record.output });
    else cas.push({ ...operation, input: record.input, output: record.output });
  }
  const kvResult = checkOperations(keyValueModel, kv, { budget: { milliseconds: budgetMs } });
  const casResult = checkOperations(casRegisterModel, cas, { budget: { milliseconds: budgetMs } });
  return [
    { model: "kv", operations: kv.length, verdict: kvResult.verdict, detail: kvResult.verdict === "linearizable" ? "" : formatCheckResult(kvResult, keyValueModel) },
    {
      model: "cas-register",
      operations: cas.length,
      verdict: casResult.verdict,
      detail: casResult.verdict === "linearizable" ? "" : formatCheckResult(casResult, casRegisterModel),
    },
  ];
}
