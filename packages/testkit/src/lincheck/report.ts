/** Human-readable rendering of check results, for the CLI and test failure messages. */

import type { ShrunkFailure } from "./shrink.js";
import type { CheckResult, Model, Operation } from "./types.js";

function describeOperation<State, Input, Output>(model: Model<State, Input, Output>, operation: Operation<Input, Output>): string {
  if (model.describe !== undefined) return model.describe(operation.input, operation.output);
  return `${JSON.stringify(operation.input)} -> ${operation.output === undefined ? "?" : JSON.stringify(operation.output)}`;
}

function describeState<State>(model: Model<State, unknown, unknown> | Model<State, never, never>, state: State): string {
  return model.describeState === undefined ? JSON.stringify(state) : model.describeState(state);
}

function formatTime(time: number): string {
  return time === Number.POSITIVE_INFINITY ? "∞" : String(time);
}

/**
 * Renders a result. For a failure it shows the longest linearizable prefix
 * (replayed through the model, with the state after each operation) and every
 * operation of the failing partition, those outside the prefix marked, which
 * is where to look for the culprit.
 */
export function formatCheckResult<State, Input, Output>(result: CheckResult<Input, Output>, model: Model<State, Input, Output>): string {
  const { steps, elapsedMilliseconds, partitions } = result.statistics;
  const cost = `${steps} steps, ${elapsedMilliseconds.toFixed(1)} ms, ${partitions} partition${partitions === 1 ? "" : "s"}`;
  if (result.verdict === "linearizable") return `linearizable (${cost})`;
  if (result.verdict === "unknown") {
    return `unknown: ${result.reason} (${cost}; undecided partitions: ${result.undecidedPartitions.join(", ")})`;
  }

  const { index, operations, longestLinearizablePrefix } = result.failingPartition;
  const lines = [`not linearizable: partition ${index} (${operations.length} operations) has no linearization (${cost})`];
  lines.push(`longest linearizable prefix (${longestLinearizablePrefix.length} operations), with the state after each:`);
  let state = model.init();
  longestLinearizablePrefix.forEach((operation, position) => {
    const stepped = model.step(state, operation.input, operation.output);
    if (stepped.ok) state = stepped.state;
    lines.push(`  ${position + 1}. [client ${operation.clientId}] ${describeOperation(model, operation)}  => ${describeState(model, state)}`);
  });
  const inPrefix = new Set(longestLinearizablePrefix);
  lines.push("operations of the failing partition by call time ('*' = outside the prefix):");
  for (const operation of operations) {
    const marker = inPrefix.has(operation) ? " " : "*";
    lines.push(`  ${marker} [${formatTime(operation.call)}, ${formatTime(operation.return)}] client ${operation.clientId}: ${describeOperation(model, operation)}`);
  }
  return lines.join("\n");
}

/**
 * Renders a shrunk failure compactly: its operations by call time, numbered,
 * with [call, return] and client, then the longest linearizable prefix the
 * search found among them, by number (the violation lies just after it).
 */
export function formatShrunk<State, Input, Output>(shrunk: ShrunkFailure<Input, Output>, model: Model<State, Input, Output>): string {
  const { operations, result, originalCount, checks, elapsedMilliseconds, finished } = shrunk;
  const effort = `${checks} checks, ${elapsedMilliseconds.toFixed(1)} ms${finished ? "" : ", time budget ran out"}`;
  const lines = [`not linearizable: these ${operations.length} of ${originalCount} operations (shrunk in ${effort}):`];
  const numberOf = new Map<Operation<Input, Output>, number>();
  operations.forEach((operation, index) => {
    numberOf.set(operation, index + 1);
    lines.push(`  #${index + 1} [${formatTime(operation.call)}, ${formatTime(operation.return)}] client ${operation.clientId}: ${describeOperation(model, operation)}`);
  });
  const prefix = result.failingPartition.longestLinearizablePrefix.map((operation) => `#${numberOf.get(operation) ?? "?"}`);
  lines.push(`longest linearizable prefix: ${prefix.length === 0 ? "(none)" : prefix.join(" ")}`);
  return lines.join("\n");
}
