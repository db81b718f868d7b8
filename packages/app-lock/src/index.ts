export { GRANTS_PER_SLOT, LockMachine, type LockMachineOptions } from "./lock-machine.js";
export * from "./ops.js";
export { LockOperationError, lockErrors, type LockError, type LockErrorCode } from "./errors.js";
export { MAX_LOCK_DELAY_MS, MAX_NAME_LENGTH, MAX_PERMITS, lockOpSchema, lockQuerySchema, parseLockOp, parseLockQuery } from "./schema.js";
export { LockSnapshotInvalidError, decodeLockSnapshot, encodeLockSnapshot } from "./snapshot.js";
export { LockClient, LockSession, LockWaitError, type AcquireOptions, type HeldLock, type LockClientOptions, type SessionOptions, type SessionState } from "./client/lock-client.js";
export { hashSecret, lockClientHandler, toLockOp, wireOpSchema, wireQuerySchema, type AwaitGrantResult, type WireLockOp } from "./service/handler.js";
export { SessionKeeper, type KeeperOptions, type LockNode } from "./service/keeper.js";
export { startLockServer, type RunningLockServer } from "./service/serve.js";
