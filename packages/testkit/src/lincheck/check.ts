/**
 * The linearizability checker: validates a history, splits it into
 * independent partitions, and runs one search per partition, interleaved.
 *
 * Partitions are searched round robin, a slice of steps at a time, rather
 * than one after the other: on a non-linearizable history the search of one
 * partition can grow without bound, and checking partitions in sequence would
 * let it starve a partition that fails quickly. The check stops at the first
 * partition that fails, since that settles the verdict for the whole history
 * (P-compositionality: a history is linearizable iff every partition is).
 */

import { HistoryValidationError, ModelDefinitionError } from "./errors.js";
import { PartitionSearch } from "./partition-search.js";
import type { CheckOptions, CheckResult, CheckStatistics, Model, Operation } from "./types.js";

const DEFAULT_SLICE_STEPS = 2048;

/** Checks whether `operations` is linearizable with respect to `model`. */
export function checkOperations<State, Input, Output>(
  model: Model<State, Input, Output>,
  operations: readonly Operation<Input, Output>[],
  options: CheckOptions = {},
): CheckResult<Input, Output> {
  validateModel(model);
  validateOperations(operations);
  const now = options.now ?? (() => performance.now());
  const startedAt = now();
  const stepLimit = options.budget?.steps ?? Number.POSITIVE_INFINITY;
  const timeLimit = options.budget?.milliseconds ?? Number.POSITIVE_INFINITY;
  const sliceSteps = Math.max(1, Math.floor(options.sliceSteps ?? DEFAULT_SLICE_STEPS));

  const partitions = model.partition === undefined ? [operations] : model.partition.call(model, operations);
  const searches = partitions.map((partition) => new PartitionSearch(model, sortByCall(partition)));
  let totalSteps = 0;
  let pending = searches.filter((search) => search.status === "searching");

  const statistics = (): CheckStatistics => ({
    steps: totalSteps,
    elapsedMilliseconds: now() - startedAt,
    partitions: searches.length,
    partitionsDecided: searches.filter((search) => search.status !== "searching").length,
  });
  const unknown = (reason: "time budget exhausted" | "step budget exhausted"): CheckResult<Input, Output> => ({
    verdict: "unknown",
    reason,
    undecidedPartitions: searches.flatMap((search, index) => (search.status === "searching" ? [index] : [])),
    statistics: statistics(),
  });

  while (pending.length > 0) {
    for (const search of pending) {
      if (totalSteps >= stepLimit) return unknown("step budget exhausted");
      if (now() - startedAt >= timeLimit) return unknown("time budget exhausted");
      totalSteps += search.run(Math.min(sliceSteps, stepLimit - totalSteps));
      if (search.status === "not linearizable") {
        return {
          verdict: "not linearizable",
          failingPartition: {
            index: searches.indexOf(search),
            operations: search.operations,
            longestLinearizablePrefix: search.longestLinearizablePrefix(),
          },
          statistics: statistics(),
        };
      }
    }
    pending = pending.filter((search) => search.status === "searching");
  }

  return {
    verdict: "linearizable",
    linearizations: searches.map((search) => search.linearization()),
    statistics: statistics(),
  };
}

/** Orders a partition by call time (stable), which makes reports and the search order predictable. */
function sortByCall<Input, Output>(operations: readonly Operation<Input, Output>[]): Operation<Input, Output>[] {
  return operations
    .map((operation, index) => ({ operation, index }))
    .sort((left, right) => left.operation.call - right.operation.call || left.index - right.index)
    .map(({ operation }) => operation);
}

function validateModel(model: object): void {
  const candidate = model as Partial<Record<"init" | "step" | "hash" | "equal", unknown>>;
  if (typeof candidate.init !== "function") throw new ModelDefinitionError("model.init must be a function");
  if (typeof candidate.step !== "function") throw new ModelDefinitionError("model.step must be a function");
  if (typeof candidate.hash !== "function" && typeof candidate.equal !== "function") {
    throw new ModelDefinitionError("model needs hash(state) or equal(left, right) to memoize states");
  }
}

/** Rejects histories the search cannot interpret, instead of returning a meaningless verdict. */
function validateOperations(operations: readonly Operation<unknown, unknown>[]): void {
  operations.forEach((operation, index) => {
    if (typeof operation.call !== "number" || !Number.isFinite(operation.call)) {
      throw new HistoryValidationError(index, `call time must be a finite number, got ${String(operation.call)}`);
    }
    if (typeof operation.return !== "number" || Number.isNaN(operation.return)) {
      throw new HistoryValidationError(index, `return time must be a number (or Infinity), got ${String(operation.return)}`);
    }
    if (operation.return < operation.call) {
      throw new HistoryValidationError(index, `returns (${operation.return}) before it is called (${operation.call})`);
    }
    if (operation.return === Number.POSITIVE_INFINITY && operation.output !== undefined) {
      throw new HistoryValidationError(index, "never returns (return time Infinity) yet has an output; use output undefined for an unknown outcome");
    }
  });
}
