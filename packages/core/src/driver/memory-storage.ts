import { ZERO_BALLOT } from "../ballot.js";
import type { Snapshot } from "../host.js";
import type { PersistBatch } from "../replica.js";
import { DurableImage, type Storage, type StoredState } from "../storage.js";

/**
 * Storage that lives in memory: durable for the life of the object, so a
 * replica can be "restarted" on the same instance in tests. Not for production.
 */
export class MemoryStorage implements Storage {
  private readonly image = new DurableImage(ZERO_BALLOT);
  private closed = false;

  async load(): Promise<StoredState> {
    return this.image.toStoredState();
  }

  async persist(batch: PersistBatch): Promise<void> {
    this.assertOpen();
    this.image.applyBatch(batch);
  }

  async saveSnapshot(snapshot: Snapshot): Promise<void> {
    this.assertOpen();
    this.image.installSnapshot(snapshot);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Reopens after `close`, as a restarted process would find the same files. */
  reopen(): void {
    this.closed = false;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error("MemoryStorage is closed");
  }
}
