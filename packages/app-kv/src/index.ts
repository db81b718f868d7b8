export { KvMachine, DEFAULT_QUOTA_BYTES, type KvMachineOptions } from "./kv-machine.js";
export * from "./ops.js";
export { CompactedError, KvOperationError, SnapshotInvalidError, kvErrors, toException, type KvError, type KvErrorCode } from "./errors.js";
export { DEFAULT_EVENT_RETENTION, type EventRetention } from "./events.js";
export {
  compare,
  compareAndDelete,
  compareAndSet,
  increment,
  op,
  putIfAbsent,
  txn,
  txnOutcome,
  type Expected,
  type KvMultiOp,
  type KvSingleOp,
  type TxnOutcome,
} from "./txn.js";
export {
  DEFAULT_LIMITS,
  validateCommandBody,
  validateOp,
  validateQuery,
  validateTest,
  validateTxn,
  type KvLimits,
  type Validated,
} from "./validate.js";
export {
  eventSchema,
  opSchema,
  parseEvent,
  parseOp,
  parseQuery,
  parseTest,
  querySchema,
  testSchema,
  txnOpSchema,
  type EventFromSchema,
  type OpFromSchema,
  type Parsed,
  type QueryFromSchema,
  type TestFromSchema,
} from "./schema.js";
export { OrderedMap } from "./ordered-map.js";
export { utf8Length } from "./text.js";
