export { FileStorage, type FileStorageOptions, type RecoveryReport } from "./file-storage.js";
export { StorageClosedError, StorageCorruptionError, StorageFailedError, StorageIdentityError, StorageWipedError } from "./errors.js";
export type { Metadata } from "./metadata.js";
export type { RebuildReport } from "./rebuild.js";
export type { TornTail } from "./segments.js";
export { POWER_LOSS_FILE, type PowerLoss, losePower } from "./power-loss.js";
