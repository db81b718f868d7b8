import type { Ballot } from "./ballot.js";
import type { Snapshot } from "./host.js";
import type { PersistBatch } from "./replica.js";
import type { SlotRecord } from "./values.js";

/** Everything a replica had made durable, as its storage gives it back on start. */
export interface StoredState {
  readonly promised: Ballot;
  /** Slot records at or above `logStart`, ascending by slot, one per slot (the latest written). */
  readonly records: readonly SlotRecord[];
  readonly logStart: number;
  /** The latest snapshot installed, if any. */
  readonly snapshot: Snapshot | undefined;
}

/**
 * Durable acceptor state. Implementations: `MemoryStorage` here, and
 * `@synod/storage-fs`. Every implementation must pass the conformance suite
 * exported from `@synod/core/testing`.
 *
 * The one promise that Paxos rests on: when `persist` resolves, the batch
 * survives a crash. A promise or accepted reply is sent only after that.
 */
export interface Storage {
  load(): Promise<StoredState>;
  /** Makes a batch durable. Calls resolve in order; batches may be group-committed. */
  persist(batch: PersistBatch): Promise<void>;
  /** Installs a snapshot atomically; older snapshots may then be dropped. */
  saveSnapshot(snapshot: Snapshot): Promise<void>;
  close(): Promise<void>;
}

/** True when a batch carries nothing to write. */
export function isEmptyBatch(batch: PersistBatch): boolean {
  return batch.promised === undefined && batch.records.length === 0 && batch.chosen.length === 0 && batch.truncateBefore === undefined;
}

/**
 * The durable state as plain data, with the semantics every storage shares:
 * a later record for a slot replaces an earlier one; truncation drops slots
 * below it. Storages that keep an in-memory index can reuse it.
 */
export class DurableImage {
  promised: Ballot;
  logStart = 0;
  snapshot: Snapshot | undefined;
  readonly records = new Map<number, SlotRecord>();

  constructor(promised: Ballot) {
    this.promised = promised;
  }

  applyBatch(batch: PersistBatch): void {
    if (batch.promised !== undefined) this.promised = batch.promised;
    for (const record of batch.records) {
      if (record.slot >= this.logStart) this.records.set(record.slot, record);
    }
    for (const slot of batch.chosen) {
      const record = this.records.get(slot);
      if (record !== undefined && !record.chosen) this.records.set(slot, { ...record, chosen: true });
    }
    if (batch.truncateBefore !== undefined && batch.truncateBefore > this.logStart) {
      for (const slot of [...this.records.keys()]) if (slot < batch.truncateBefore) this.records.delete(slot);
      this.logStart = batch.truncateBefore;
    }
  }

  installSnapshot(snapshot: Snapshot): void {
    if (this.snapshot === undefined || snapshot.handle.slot >= this.snapshot.handle.slot) this.snapshot = snapshot;
  }

  toStoredState(): StoredState {
    const records = [...this.records.values()].sort((a, b) => a.slot - b.slot);
    return { promised: this.promised, records, logStart: this.logStart, snapshot: this.snapshot };
  }

  clone(): DurableImage {
    const copy = new DurableImage(this.promised);
    copy.logStart = this.logStart;
    copy.snapshot = this.snapshot;
    for (const [slot, record] of this.records) copy.records.set(slot, record);
    return copy;
  }
}
