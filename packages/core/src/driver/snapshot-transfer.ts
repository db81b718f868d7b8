import type { NodeId } from "../ballot.js";
import { crc32c, fromBase64, toBase64 } from "../bytes.js";
import type { Snapshot } from "../host.js";
import { MAX_SNAPSHOT_CHUNK_BYTES, type Message, type SnapshotChunk, type SnapshotRequest } from "../messages.js";
import { decodeSnapshot, snapshotHeader } from "../snapshot-stream.js";

/** What a transfer reports as it goes (see `SynodNode`'s `snapshot` event). */
export type SnapshotProgress =
  | { readonly kind: "chunk"; readonly from: NodeId; readonly slot: number; readonly offset: number; readonly size: number }
  | { readonly kind: "installed"; readonly from: NodeId; readonly slot: number; readonly size: number }
  | { readonly kind: "rejected"; readonly from: NodeId; readonly reason: string };

interface Incoming {
  readonly minSlot: number;
  /** Replicas to ask, the leader that sent us first. */
  sources: NodeId[];
  source: number;
  /** The snapshot being assembled, once its first chunk arrived. */
  slot: number | undefined;
  checksum: number;
  size: number;
  parts: Uint8Array[];
  received: number;
  /** Chunks are asked for up to here (a few ahead of `received`, so that round trips overlap). */
  requested: number;
  /** Ticks since the last chunk (or request). */
  idleTicks: number;
}

/**
 * Moves snapshots between replicas in checksummed chunks, pulled by the
 * receiver, a few requests ahead so that round trips overlap. A request names the transfer under way (slot,
 * checksum, bytes received), so a transfer cut off halfway goes on where it
 * stopped, from the same replica or any other with the same snapshot; only
 * a replica with another snapshot starts it afresh. Each chunk carries its
 * own CRC32C and the whole snapshot's, and the assembled bytes are checked
 * before anything is installed.
 *
 * Serving keeps the encoding of this replica's latest snapshot in memory.
 */
export class SnapshotTransfer {
  /** What this replica serves: its latest snapshot's header and data (the data itself, not a copy). */
  private served: { readonly slot: number; readonly header: Uint8Array; readonly data: Uint8Array; readonly size: number; readonly checksum: number } | undefined;
  private incoming: Incoming | undefined;

  constructor(
    private readonly self: NodeId,
    private readonly send: (message: Message) => void,
    private readonly chunkBytes: number,
    /** Ticks without a chunk before asking again, from the next replica. */
    private readonly stallTicks: number,
    /** Chunk requests in flight at once, once the snapshot's size is known. */
    private readonly window = 4,
  ) {}

  /** This replica's latest snapshot: what it serves from now on. */
  offer(snapshot: Snapshot): void {
    if (this.served !== undefined && this.served.slot >= snapshot.handle.slot) return;
    const header = snapshotHeader(snapshot.handle);
    const checksum = crc32c(snapshot.data, crc32c(header));
    this.served = { slot: snapshot.handle.slot, header, data: snapshot.data, size: header.length + snapshot.data.length, checksum };
  }

  /** True when this replica has a snapshot at `minSlot` or later to serve. */
  canServe(minSlot: number): boolean {
    return this.served !== undefined && this.served.slot >= minSlot;
  }

  /** True while a transfer is under way. */
  get fetching(): boolean {
    return this.incoming !== undefined;
  }

  /** Starts fetching a snapshot at `minSlot` or later (or goes on with the one under way if it is far enough). */
  want(minSlot: number, sources: readonly NodeId[]): void {
    const current = this.incoming;
    if (current !== undefined && current.minSlot >= minSlot) return;
    const ordered = [...new Set(sources)].filter((id) => id !== this.self);
    if (ordered.length === 0) return;
    this.incoming = { minSlot, sources: ordered, source: 0, slot: undefined, checksum: 0, size: 0, parts: [], received: 0, requested: 0, idleTicks: 0 };
    this.request();
  }

  /** Counts a tick; a transfer with no chunk for `stallTicks` asks the next replica, resuming where it stopped. */
  tick(): void {
    const incoming = this.incoming;
    if (incoming === undefined) return;
    incoming.idleTicks += 1;
    if (incoming.idleTicks < this.stallTicks) return;
    incoming.source = (incoming.source + 1) % incoming.sources.length;
    this.request();
  }

  /** Answers a request with the next chunk of this replica's latest snapshot. */
  onRequest(request: SnapshotRequest): void {
    const served = this.served;
    const reply = { type: "snapshot-chunk" as const, from: this.self, to: request.from };
    if (served === undefined || served.slot < request.minSlot) {
      this.send({ ...reply, available: false, slot: served?.slot ?? -1, checksum: 0, size: 0, offset: 0, data: "", crc: 0 });
      return;
    }
    const resume = request.resume;
    const offset = resume !== undefined && resume.slot === served.slot && resume.checksum === served.checksum ? Math.min(resume.offset, served.size) : 0;
    const chunk = chunkOf(served, offset, Math.min(request.length, MAX_SNAPSHOT_CHUNK_BYTES));
    this.send({ ...reply, available: true, slot: served.slot, checksum: served.checksum, size: served.size, offset, data: toBase64(chunk), crc: crc32c(chunk) });
  }

  /** Takes a chunk; returns the snapshot once all of it arrived and checked out. */
  onChunk(chunk: SnapshotChunk, report: (progress: SnapshotProgress) => void): Snapshot | undefined {
    const incoming = this.incoming;
    if (incoming === undefined || chunk.from !== incoming.sources[incoming.source]) return undefined;
    incoming.idleTicks = 0;
    if (!chunk.available || chunk.slot < incoming.minSlot) {
      // This one has nothing recent enough: ask the next.
      incoming.source = (incoming.source + 1) % incoming.sources.length;
      this.request();
      return undefined;
    }
    let data: Uint8Array;
    try {
      data = fromBase64(chunk.data);
    } catch {
      return this.reject(chunk.from, "a chunk is not base64", report);
    }
    if (crc32c(data) !== chunk.crc) return this.reject(chunk.from, `the chunk at ${chunk.offset} fails its checksum`, report);
    if (incoming.slot !== chunk.slot || incoming.checksum !== chunk.checksum || incoming.size !== chunk.size) {
      // Another snapshot than the one under way (or the first chunk): start it afresh.
      if (chunk.offset !== 0) return this.reject(chunk.from, "a new snapshot did not start at offset 0", report);
      incoming.slot = chunk.slot;
      incoming.checksum = chunk.checksum;
      incoming.size = chunk.size;
      incoming.parts = [];
      incoming.received = 0;
      incoming.requested = 0;
    }
    if (chunk.offset === incoming.received && data.length > 0) {
      incoming.parts.push(data);
      incoming.received += data.length;
      if (incoming.requested < incoming.received) incoming.requested = incoming.received;
      report({ kind: "chunk", from: chunk.from, slot: chunk.slot, offset: chunk.offset, size: chunk.size });
    }
    if (incoming.received < incoming.size) {
      this.requestAhead();
      return undefined;
    }
    const bytes = new Uint8Array(incoming.size);
    let at = 0;
    for (const part of incoming.parts) {
      bytes.set(part, at);
      at += part.length;
    }
    incoming.parts = [];
    if (crc32c(bytes) !== incoming.checksum) return this.reject(chunk.from, "the assembled snapshot fails its checksum", report);
    let snapshot: Snapshot;
    try {
      snapshot = decodeSnapshot(bytes);
    } catch (error) {
      return this.reject(chunk.from, (error as Error).message, report);
    }
    this.incoming = undefined;
    report({ kind: "installed", from: chunk.from, slot: snapshot.handle.slot, size: bytes.length });
    return snapshot;
  }

  /** Drops what arrived (it cannot be trusted) and starts over from the next replica. */
  private reject(from: NodeId, reason: string, report: (progress: SnapshotProgress) => void): undefined {
    const incoming = this.incoming;
    report({ kind: "rejected", from, reason });
    if (incoming === undefined) return undefined;
    incoming.slot = undefined;
    incoming.parts = [];
    incoming.received = 0;
    incoming.requested = 0;
    incoming.source = (incoming.source + 1) % incoming.sources.length;
    this.request();
    return undefined;
  }

  /** Asks the current source from what arrived: one request while the snapshot is unknown, else a window of them. */
  private request(): void {
    const incoming = this.incoming;
    if (incoming === undefined) return;
    incoming.idleTicks = 0;
    incoming.requested = incoming.received;
    if (incoming.slot === undefined) {
      this.send({ type: "snapshot-request", from: this.self, to: incoming.sources[incoming.source] as NodeId, minSlot: incoming.minSlot, length: this.chunkBytes });
      return;
    }
    this.requestAhead();
  }

  /** Keeps `window` chunk requests in flight ahead of what arrived. */
  private requestAhead(): void {
    const incoming = this.incoming;
    if (incoming === undefined || incoming.slot === undefined) return;
    if (incoming.requested < incoming.received) incoming.requested = incoming.received;
    const to = incoming.sources[incoming.source] as NodeId;
    while (incoming.requested < incoming.size && incoming.requested < incoming.received + this.window * this.chunkBytes) {
      this.send({
        type: "snapshot-request",
        from: this.self,
        to,
        minSlot: incoming.minSlot,
        resume: { slot: incoming.slot, checksum: incoming.checksum, offset: incoming.requested },
        length: this.chunkBytes,
      });
      incoming.requested += this.chunkBytes;
    }
  }
}

/** Bytes `[offset, offset + length)` of a served snapshot (its header, then its data), copied into one chunk. */
function chunkOf(served: { readonly header: Uint8Array; readonly data: Uint8Array; readonly size: number }, offset: number, length: number): Uint8Array {
  const end = Math.min(served.size, offset + length);
  const chunk = new Uint8Array(Math.max(0, end - offset));
  const headerLength = served.header.length;
  if (offset < headerLength) chunk.set(served.header.subarray(offset, Math.min(headerLength, end)));
  if (end > headerLength) {
    const from = Math.max(offset, headerLength);
    chunk.set(served.data.subarray(from - headerLength, end - headerLength), from - offset);
  }
  return chunk;
}
