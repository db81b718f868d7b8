import type { Ballot } from "./ballot.js";
import type { SnapshotHandle } from "./host.js";
import type { PersistBatch } from "./replica.js";
import type { SlotRecord } from "./values.js";

/** Everything a replica had made durable, as its storage gives it back on start. */
export interface StoredState<S = StoredSnapshot> {
  readonly promised: Ballot;
  /** Slot records at or above `logStart`, ascending by slot, one per slot (the latest written). */
  readonly records: readonly SlotRecord[];
  readonly logStart: number;
  /** The latest snapshot installed, if any. */
  readonly snapshot: S | undefined;
  /** A snapshot whose transfer from another replica was cut off, as far as it came. */
  readonly incoming?: IncomingSnapshot | undefined;
  /**
   * The replica's durable state was lost (corrupted, wiped, or diverged and
   * reset) and it has not finished rebuilding (see
   * `RecoveredState.rebuilding`); cleared by a batch with `rebuilt`.
   */
  readonly rebuilding?: boolean;
}

/**
 * A snapshot as storage holds it: its encoding (`encodeSnapshot`: the
 * handle, then the application's data), sized and checksummed, read in
 * ranges, so that a replica can restore it and serve it to others without
 * holding it in memory.
 */
export interface StoredSnapshot {
  readonly handle: SnapshotHandle;
  /** Bytes in the encoding. */
  readonly size: number;
  /** CRC32C of the encoding: with the slot, what names this snapshot in a transfer. */
  readonly checksum: number;
  /** Bytes `[offset, offset + length)` of the encoding (fewer at its end). */
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** Which snapshot a transfer brings: its slot, and its encoding's size and CRC32C. */
export interface SnapshotIdentity {
  readonly slot: number;
  readonly checksum: number;
  readonly size: number;
}

/** A snapshot partly received: which one, and how many of its bytes are stored. */
export interface IncomingSnapshot extends SnapshotIdentity {
  readonly received: number;
}

/**
 * A snapshot being received from another replica, bytes in order. Storage
 * keeps what arrived across a restart (see `StoredState.incoming`), so a
 * transfer cut off halfway goes on where it stopped.
 */
export interface SnapshotReceiver {
  /** Bytes stored so far. */
  readonly received: number;
  /** Stores the next bytes. */
  append(bytes: Uint8Array): Promise<void>;
  /**
   * Once every byte arrived: checks the bytes stored against the snapshot's
   * size and checksum, and makes it the latest snapshot, atomically. Throws
   * `InvalidInputError` (and drops the bytes) when they do not check out.
   */
  complete(): Promise<StoredSnapshot>;
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
  /**
   * Writes a snapshot, its handle and then its data's chunks as they come,
   * and makes it the latest, atomically; older snapshots may then be dropped.
   */
  writeSnapshot(handle: SnapshotHandle, data: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<StoredSnapshot>;
  /**
   * Receives a snapshot from another replica: goes on with the bytes stored
   * of it if it is the one `incoming` named, else starts afresh (dropping
   * any other partial snapshot).
   */
  receiveSnapshot(snapshot: SnapshotIdentity): Promise<SnapshotReceiver>;
  /**
   * Optional: forgets everything (promise, log, snapshots) and durably marks
   * the replica rebuilding, so that a crash during the rebuild restarts it
   * rebuilding. Needed for a replica to rebuild itself in place after its
   * state diverged; without it the driver stops instead.
   */
  reset?(): Promise<void>;
  close(): Promise<void>;
}

/** True when a batch carries nothing to write. */
export function isEmptyBatch(batch: PersistBatch): boolean {
  return batch.promised === undefined && batch.records.length === 0 && batch.chosen.length === 0 && batch.truncateBefore === undefined && batch.rebuilt !== true;
}

/**
 * The durable state as plain data, with the semantics every storage shares:
 * a later record for a slot replaces an earlier one; truncation drops slots
 * below it. Storages that keep an in-memory index can reuse it.
 */
export class DurableImage<S extends { readonly handle: SnapshotHandle } = StoredSnapshot> {
  promised: Ballot;
  logStart = 0;
  snapshot: S | undefined;
  rebuilding = false;
  readonly records = new Map<number, SlotRecord>();

  constructor(promised: Ballot) {
    this.promised = promised;
  }

  applyBatch(batch: PersistBatch): void {
    if (batch.rebuilt === true) this.rebuilding = false;
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

  installSnapshot(snapshot: S): void {
    if (this.snapshot === undefined || snapshot.handle.slot >= this.snapshot.handle.slot) this.snapshot = snapshot;
  }

  toStoredState(): StoredState<S> {
    const records = [...this.records.values()].sort((a, b) => a.slot - b.slot);
    return { promised: this.promised, records, logStart: this.logStart, snapshot: this.snapshot, ...(this.rebuilding ? { rebuilding: true } : {}) };
  }

  /** Forgets everything and marks the replica rebuilding (see `Storage.reset`). */
  reset(promised: Ballot): void {
    this.promised = promised;
    this.logStart = 0;
    this.snapshot = undefined;
    this.records.clear();
    this.rebuilding = true;
  }

  clone(): DurableImage<S> {
    const copy = new DurableImage<S>(this.promised);
    copy.logStart = this.logStart;
    copy.snapshot = this.snapshot;
    copy.rebuilding = this.rebuilding;
    for (const [slot, record] of this.records) copy.records.set(slot, record);
    return copy;
  }
}
