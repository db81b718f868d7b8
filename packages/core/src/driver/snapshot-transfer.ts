import type { NodeId } from "../ballot.js";
import { crc32c, fromBase64, toBase64 } from "../bytes.js";
import { InvalidInputError } from "../errors.js";
import { MAX_SNAPSHOT_CHUNK_BYTES, type Message, type SnapshotChunk, type SnapshotRequest } from "../messages.js";
import type { IncomingSnapshot, SnapshotIdentity, SnapshotReceiver, Storage, StoredSnapshot } from "../storage.js";

/** What a transfer reports as it goes (see `SynodNode`'s `snapshot` event). */
export type SnapshotProgress =
  /** A chunk starting at `offset` is stored (reported after its write, not on arrival). */
  | { readonly kind: "chunk"; readonly from: NodeId; readonly slot: number; readonly offset: number; readonly size: number }
  /** A transfer went on from where it stopped: after a restart, or from another replica. */
  | { readonly kind: "resumed"; readonly from: NodeId; readonly slot: number; readonly offset: number; readonly size: number }
  | { readonly kind: "installed"; readonly from: NodeId; readonly slot: number; readonly size: number }
  | { readonly kind: "rejected"; readonly from: NodeId; readonly reason: string };

interface Incoming {
  readonly minSlot: number;
  /** Replicas to ask, the leader that sent us first. */
  readonly sources: NodeId[];
  source: number;
  /** The snapshot being received, once known (its first chunk, or what storage kept of it). */
  snapshot: SnapshotIdentity | undefined;
  /** Bytes accepted, in order (handed to storage; some may still be on their way to it). */
  received: number;
  /** Chunks are asked for up to here (a few ahead of `received`, so that round trips overlap). */
  requested: number;
  /** The replica the last accepted chunk came from. */
  lastFrom: NodeId | undefined;
  /** Every byte arrived; storage is checking and installing them. */
  completing: boolean;
  /** Ticks since the last chunk (or request). */
  idleTicks: number;
}

/** Where the transfer hands what it needs from its replica. */
export interface TransferHooks {
  readonly send: (message: Message) => void;
  readonly storage: Pick<Storage, "receiveSnapshot">;
  /** A snapshot arrived whole and checked out, and storage made it the latest: install it. */
  readonly received: (snapshot: StoredSnapshot, from: NodeId) => void;
  readonly report: (progress: SnapshotProgress) => void;
  /** Storage failed under a transfer: the replica cannot go on. */
  readonly fail: (error: Error) => void;
}

/**
 * Moves snapshots between replicas in checksummed chunks, pulled by the
 * receiver, a few requests ahead so that round trips overlap. A request
 * names the transfer under way (slot, checksum, bytes received), so a
 * transfer cut off halfway goes on where it stopped: from the same replica
 * or any other with the same snapshot, and after a restart of the receiver
 * (storage keeps the bytes that arrived). Only a replica with another
 * snapshot starts it afresh. Each chunk carries its own CRC32C and the
 * whole snapshot's; storage checks the whole before anything is installed.
 *
 * Neither side holds a snapshot in memory: the sender reads each chunk
 * from its stored snapshot, and the receiver appends each to storage.
 */
export class SnapshotTransfer {
  /** What this replica serves: its latest snapshot. */
  private served: StoredSnapshot | undefined;
  /** Reads for chunks run one after another, so replies leave in the order asked. */
  private serving: Promise<void> = Promise.resolve();
  private incoming: Incoming | undefined;
  /** What storage kept of a transfer cut off before this replica restarted. */
  private kept: IncomingSnapshot | undefined;
  /** Storage writes of received bytes, one after another. */
  private writes: Promise<SnapshotReceiver | undefined> = Promise.resolve(undefined);

  constructor(
    private readonly self: NodeId,
    private readonly hooks: TransferHooks,
    private readonly chunkBytes: number,
    /** Ticks without a chunk before asking again, from the next replica. */
    private readonly stallTicks: number,
    /** Chunk requests in flight at once, once the snapshot's size is known. */
    private readonly window = 4,
  ) {}

  /** This replica's latest snapshot: what it serves from now on. */
  offer(snapshot: StoredSnapshot): void {
    if (this.served !== undefined && this.served.handle.slot >= snapshot.handle.slot) return;
    this.served = snapshot;
  }

  /** Forgets what it served and what it was fetching: the replica's storage was reset. */
  reset(): void {
    this.served = undefined;
    this.incoming = undefined;
    this.kept = undefined;
  }

  /** A transfer that storage kept from before a restart: the next `want` it covers goes on from it. */
  keep(incoming: IncomingSnapshot | undefined): void {
    this.kept = incoming;
  }

  /** True when this replica has a snapshot at `minSlot` or later to serve. */
  canServe(minSlot: number): boolean {
    return this.served !== undefined && this.served.handle.slot >= minSlot;
  }

  /** Starts fetching a snapshot at `minSlot` or later (or goes on with the one under way if it is far enough). */
  want(minSlot: number, sources: readonly NodeId[]): void {
    const current = this.incoming;
    if (current !== undefined && current.minSlot >= minSlot) return;
    const ordered = [...new Set(sources)].filter((id) => id !== this.self);
    if (ordered.length === 0) return;
    const kept = this.kept !== undefined && this.kept.slot >= minSlot ? this.kept : undefined;
    this.kept = undefined;
    this.incoming = {
      minSlot,
      sources: ordered,
      source: 0,
      snapshot: kept,
      received: kept?.received ?? 0,
      requested: kept?.received ?? 0,
      lastFrom: undefined,
      completing: false,
      idleTicks: 0,
    };
    if (kept !== undefined) this.openReceiver(kept);
    this.request();
  }

  /** Counts a tick; a transfer with no chunk for `stallTicks` asks the next replica, resuming where it stopped. */
  tick(): void {
    const incoming = this.incoming;
    if (incoming === undefined || incoming.completing) return;
    incoming.idleTicks += 1;
    if (incoming.idleTicks < this.stallTicks) return;
    this.nextSource(incoming);
  }

  /** Answers a request with the next chunk of this replica's latest snapshot. */
  onRequest(request: SnapshotRequest): void {
    const served = this.served;
    const reply = { type: "snapshot-chunk" as const, from: this.self, to: request.from };
    const unavailable = () => this.hooks.send({ ...reply, available: false, slot: served?.handle.slot ?? -1, checksum: 0, size: 0, offset: 0, data: "", crc: 0 });
    if (served === undefined || served.handle.slot < request.minSlot) {
      unavailable();
      return;
    }
    const resume = request.resume;
    const same = resume !== undefined && resume.slot === served.handle.slot && resume.checksum === served.checksum;
    const offset = same ? Math.min(resume.offset, served.size) : 0;
    this.serving = this.serving.then(async () => {
      let chunk: Uint8Array;
      try {
        chunk = await served.read(offset, Math.min(request.length, MAX_SNAPSHOT_CHUNK_BYTES));
      } catch {
        // Dropped under us (a newer snapshot replaced it): the receiver asks again, or asks another.
        unavailable();
        return;
      }
      this.hooks.send({ ...reply, available: true, slot: served.handle.slot, checksum: served.checksum, size: served.size, offset, data: toBase64(chunk), crc: crc32c(chunk) });
    });
  }

  /** Takes a chunk: appends it to storage if it is the next one, and asks for more. */
  onChunk(chunk: SnapshotChunk): void {
    const incoming = this.incoming;
    if (incoming === undefined || incoming.completing || chunk.from !== incoming.sources[incoming.source]) return;
    incoming.idleTicks = 0;
    if (!chunk.available || chunk.slot < incoming.minSlot) {
      // This one has nothing recent enough: ask the next.
      this.nextSource(incoming);
      return;
    }
    let data: Uint8Array;
    try {
      data = fromBase64(chunk.data);
    } catch {
      this.reject(incoming, chunk.from, "a chunk is not base64");
      return;
    }
    if (crc32c(data) !== chunk.crc) {
      this.reject(incoming, chunk.from, `the chunk at ${chunk.offset} fails its checksum`);
      return;
    }
    const known = incoming.snapshot;
    if (known === undefined || known.slot !== chunk.slot || known.checksum !== chunk.checksum || known.size !== chunk.size) {
      // Another snapshot than the one under way (or the first chunk): start it afresh.
      if (chunk.offset !== 0) {
        this.reject(incoming, chunk.from, "a new snapshot did not start at offset 0");
        return;
      }
      incoming.snapshot = { slot: chunk.slot, checksum: chunk.checksum, size: chunk.size };
      incoming.received = 0;
      incoming.requested = 0;
      incoming.lastFrom = undefined;
      this.openReceiver(incoming.snapshot);
    }
    if (chunk.offset === incoming.received && data.length > 0) {
      if (incoming.lastFrom !== chunk.from && chunk.offset > 0) this.hooks.report({ kind: "resumed", from: chunk.from, slot: chunk.slot, offset: chunk.offset, size: chunk.size });
      incoming.lastFrom = chunk.from;
      // Reported once stored: a replica killed after the report resumes past this chunk.
      this.append(data, () => this.hooks.report({ kind: "chunk", from: chunk.from, slot: chunk.slot, offset: chunk.offset, size: chunk.size }));
      incoming.received += data.length;
      if (incoming.requested < incoming.received) incoming.requested = incoming.received;
    }
    if (incoming.received < chunk.size) {
      this.requestAhead();
      return;
    }
    incoming.completing = true;
    const from = chunk.from;
    this.writes = this.writes.then(async (receiver) => {
      if (receiver === undefined) return undefined;
      try {
        const stored = await receiver.complete();
        if (this.incoming === incoming) this.incoming = undefined;
        this.hooks.received(stored, from);
      } catch (error) {
        if (!(error instanceof InvalidInputError)) throw error;
        incoming.completing = false;
        this.reject(incoming, from, error.message);
      }
      return undefined;
    });
    this.watchWrites();
  }

  /** Drops what arrived (it cannot be trusted) and starts over from the next replica. */
  private reject(incoming: Incoming, from: NodeId, reason: string): void {
    this.hooks.report({ kind: "rejected", from, reason });
    incoming.snapshot = undefined;
    incoming.received = 0;
    incoming.requested = 0;
    incoming.lastFrom = undefined;
    this.nextSource(incoming);
  }

  private nextSource(incoming: Incoming): void {
    incoming.source = (incoming.source + 1) % incoming.sources.length;
    this.request();
  }

  /** Starts (or goes on with) storing a snapshot, after the writes queued before. */
  private openReceiver(snapshot: SnapshotIdentity): void {
    this.writes = this.writes.then(() => this.hooks.storage.receiveSnapshot(snapshot));
    this.watchWrites();
  }

  private append(data: Uint8Array, stored: () => void): void {
    this.writes = this.writes.then(async (receiver) => {
      if (receiver === undefined) return receiver;
      await receiver.append(data);
      stored();
      return receiver;
    });
    this.watchWrites();
  }

  /** A storage failure under a transfer stops the replica, as any storage failure does. */
  private watchWrites(): void {
    const writes = this.writes;
    writes.catch((error: unknown) => {
      if (this.writes !== writes) return;
      this.incoming = undefined;
      this.writes = Promise.resolve(undefined);
      this.hooks.fail(error instanceof Error ? error : new Error(String(error)));
    });
  }

  /** Asks the current source from what arrived: one request while the snapshot is unknown, else a window of them. */
  private request(): void {
    const incoming = this.incoming;
    if (incoming === undefined) return;
    incoming.idleTicks = 0;
    incoming.requested = incoming.received;
    if (incoming.snapshot === undefined) {
      this.hooks.send({ type: "snapshot-request", from: this.self, to: incoming.sources[incoming.source] as NodeId, minSlot: incoming.minSlot, length: this.chunkBytes });
      return;
    }
    this.requestAhead(true);
  }

  /**
   * Keeps `window` chunk requests in flight ahead of what arrived; `first`
   * asks at least once, even with every byte asked for or stored: a source
   * that has another snapshot answers with its own, and one that has this
   * one answers past the end, which completes it.
   */
  private requestAhead(first = false): void {
    const incoming = this.incoming;
    const snapshot = incoming?.snapshot;
    if (incoming === undefined || snapshot === undefined) return;
    if (incoming.requested < incoming.received) incoming.requested = incoming.received;
    const to = incoming.sources[incoming.source] as NodeId;
    while (first || (incoming.requested < snapshot.size && incoming.requested < incoming.received + this.window * this.chunkBytes)) {
      first = false;
      this.hooks.send({
        type: "snapshot-request",
        from: this.self,
        to,
        minSlot: incoming.minSlot,
        resume: { slot: snapshot.slot, checksum: snapshot.checksum, offset: incoming.requested },
        length: this.chunkBytes,
      });
      incoming.requested += this.chunkBytes;
    }
  }
}
