/** Public API of the linearizability checker. */

export type {
  CheckBudget,
  CheckOptions,
  CheckResult,
  CheckStatistics,
  ClientId,
  EventId,
  FailingPartition,
  HistoryEvent,
  Model,
  ModelBehaviour,
  Operation,
  StateIdentity,
  StepResult,
  Verdict,
} from "./types.js";
export { checkOperations } from "./check.js";
export { operationsFromEvents } from "./events.js";
export { HistoryParseError, HistoryValidationError, InvalidOperationError, ModelDefinitionError, ShrinkInputError } from "./errors.js";
export {
  casRegisterModel,
  keyValueModel,
  type CasRegisterInput,
  type CasRegisterOutput,
  type KeyValueInput,
  type KeyValueOutput,
  type KeyValueState,
  type RegisterValue,
} from "./models.js";
export { parseCasRegisterHistory, parseKeyValueHistory, type ParseOptions } from "./parse.js";
export { formatCheckResult, formatShrunk } from "./report.js";
export { shrinkFailure, type FailingCheckResult, type ShrinkBudget, type ShrinkOptions, type ShrunkFailure } from "./shrink.js";
