import { ZERO_BALLOT } from "../ballot.js";
import { type SnapshotHandle, collectChunks } from "../host.js";
import type { PersistBatch } from "../replica.js";
import { BufferedSnapshot } from "../snapshot-stream.js";
import { DurableImage, type SnapshotIdentity, type SnapshotReceiver, type Storage, type StoredSnapshot, type StoredState } from "../storage.js";

/** A partly received snapshot, kept in memory. */
interface Incoming {
  readonly identity: SnapshotIdentity;
  parts: Uint8Array[];
  received: number;
}

/**
 * Storage that lives in memory: durable for the life of the object, so a
 * replica can be "restarted" on the same instance in tests. Not for production.
 */
export class MemoryStorage implements Storage {
  private readonly image = new DurableImage(ZERO_BALLOT);
  private incoming: Incoming | undefined;
  private closed = false;

  async load(): Promise<StoredState> {
    const incoming = this.incoming;
    return { ...this.image.toStoredState(), incoming: incoming === undefined ? undefined : { ...incoming.identity, received: incoming.received } };
  }

  async persist(batch: PersistBatch): Promise<void> {
    this.assertOpen();
    this.image.applyBatch(batch);
  }

  async writeSnapshot(handle: SnapshotHandle, data: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<StoredSnapshot> {
    this.assertOpen();
    const snapshot = await BufferedSnapshot.of(handle, data);
    this.image.installSnapshot(snapshot);
    return snapshot;
  }

  async receiveSnapshot(identity: SnapshotIdentity): Promise<SnapshotReceiver> {
    this.assertOpen();
    const current = this.incoming;
    const same = current !== undefined && current.identity.slot === identity.slot && current.identity.checksum === identity.checksum && current.identity.size === identity.size;
    const incoming: Incoming = same ? current : { identity, parts: [], received: 0 };
    this.incoming = incoming;
    const storage = this;
    return {
      get received() {
        return incoming.received;
      },
      async append(bytes) {
        storage.assertOpen();
        incoming.parts.push(Uint8Array.from(bytes));
        incoming.received += bytes.length;
      },
      async complete() {
        storage.assertOpen();
        if (storage.incoming === incoming) storage.incoming = undefined;
        const snapshot = BufferedSnapshot.received(identity, await collectChunks(incoming.parts));
        storage.image.installSnapshot(snapshot);
        return snapshot;
      },
    };
  }

  async reset(): Promise<void> {
    this.assertOpen();
    this.image.reset(ZERO_BALLOT);
    this.incoming = undefined;
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
