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
export { KvClient, KeptLease, type CasResult, type KeySelector, type KvCallOptions, type KvClientOptions, type KvRangeOptions, type KvReadOptions, type TxnResult } from "./client/kv-client.js";
export { KvWatch, type WatchOptions } from "./client/watch.js";
export { Namespace } from "./client/namespace.js";
export { WatchHub, type WatchBatch, type WatchEnd, type WatchHubOptions, type WatchSink } from "./service/watch-hub.js";
export { kvClientHandler, watchQuerySchema, type KvHandlerOptions, type KvNode, type WatchQuery } from "./service/handler.js";
export { Housekeeper, type HousekeeperOptions } from "./service/housekeeper.js";
export { kvOptionsSchema, parseKvOptions, startKvServer, type KvOptions, type KvServerConfigInput, type RunningKvServer } from "./service/serve.js";
export { ClientError, UnknownOutcomeError } from "@synod/transport-ws";
