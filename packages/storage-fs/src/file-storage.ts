import { type FileHandle, mkdir, open, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  type Ballot,
  DurableImage,
  type IncomingSnapshot,
  type PersistBatch,
  type SnapshotHandle,
  type SnapshotIdentity,
  type SnapshotReceiver,
  type Storage,
  type StoredSnapshot,
  type StoredState,
  ZERO_BALLOT,
  ballotsEqual,
  isEmptyBatch,
} from "@synod/core";
import { syncDirectory } from "./atomic-file.js";
import { noteDurable } from "./power-loss.js";
import { encodeChosenMarks, encodeCommit, encodeRecord } from "./codec.js";
import { StorageClosedError, StorageCorruptionError, StorageFailedError, StorageIdentityError, StorageWipedError } from "./errors.js";
import { METADATA_FILE, type Metadata, readMetadata, writeMetadata } from "./metadata.js";
import { type RebuildReport, discardSnapshots, markRebuilding, rebuildDamaged, storageEntries } from "./rebuild.js";
import { SEGMENT_PATTERN, type SegmentInfo, type TornTail, removeSegments, scanSegments, segmentFileName, segmentNumber, startLog } from "./segments.js";
import { IncomingSnapshotFile, readIncoming, readLatestSnapshot, removeSnapshotsBefore, writeSnapshotFile } from "./snapshot-file.js";

export interface FileStorageOptions {
  /** The replica this directory belongs to; a directory of another replica is refused. */
  readonly nodeId: string;
  /**
   * True when this replica was a member before (its operator or runtime
   * knows): an empty directory is then a wiped one, reported as
   * `StorageWipedError` instead of silently starting afresh.
   */
  readonly expectExisting?: boolean;
  /** Roll to a new segment once the active one reaches this size (default 64 MiB). */
  readonly segmentBytes?: number;
  /** The incarnation written into a new directory (default 1). */
  readonly incarnation?: number;
  /**
   * What open does when it finds the directory corrupt or wiped
   * (`StorageCorruptionError`, `StorageWipedError`). "throw" (the default)
   * leaves everything as it is, for an operator. "rebuild" moves the
   * directory's files into a `damaged-<time>/` folder inside it (kept for
   * forensics, never read again) and starts an empty storage there marked
   * rebuilding (`load().rebuilding`), so the replica re-learns its state from
   * its peers and votes in nothing until then; `recovery.rebuild` says what
   * was found. A directory of another replica (`StorageIdentityError`) is
   * always refused.
   */
  readonly onCorruption?: "throw" | "rebuild";
  /**
   * Test-only, for fault campaigns: note after every fdatasync how much of
   * the log is durable (`power-loss.json`), so that `losePower` can cut a
   * stopped replica back to what a power cut would have kept.
   */
  readonly durabilityJournal?: boolean;
}

/** What opening found: a torn tail that was cut off, leftovers removed, and what was replayed. */
export interface RecoveryReport {
  readonly fresh: boolean;
  readonly tornTail: TornTail | undefined;
  readonly segments: number;
  readonly commits: number;
  readonly records: number;
  readonly removedFiles: readonly string[];
  /** Set when open found the directory corrupt or wiped and rebuilt it (`onCorruption: "rebuild"`). */
  readonly rebuild: RebuildReport | undefined;
}

interface QueuedBatch {
  readonly batch: PersistBatch;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;

async function isEmptyFile(path: string): Promise<boolean> {
  const handle = await open(path, "r");
  try {
    return (await handle.stat()).size === 0;
  } finally {
    await handle.close();
  }
}

/** Starts a new directory. */
async function createDirectory(directory: string, options: FileStorageOptions): Promise<Metadata> {
  const metadata: Metadata = {
    version: 1,
    nodeId: options.nodeId,
    incarnation: options.incarnation ?? 1,
    promised: ZERO_BALLOT,
    logStart: 0,
    firstSegment: 1,
    activeSegment: 1,
  };
  await startLog(directory, metadata);
  return metadata;
}

/**
 * Synod's durable storage on the file system: a segmented append-only log of
 * CRC32C-framed records written in group commits (one write and one
 * fdatasync for every batch waiting), metadata and snapshots replaced
 * atomically, and recovery that cuts off a torn tail and reports any other
 * damage with its file and offset.
 *
 * `persist` resolves only after the batch is durable, so the driver's
 * "persist before send" holds on disk.
 */
export class FileStorage implements Storage {
  private readonly image: DurableImage;
  private queue: QueuedBatch[] = [];
  private flushing: Promise<void> | undefined;
  private snapshotWrites: Promise<unknown> = Promise.resolve();
  /** A snapshot being received from another replica, and what was stored of one before this open. */
  private receiving: IncomingSnapshotFile | undefined;
  private incoming: IncomingSnapshot | undefined;
  private failure: StorageFailedError | undefined;
  /** Settles when a `reset` under way is done; writes issued meanwhile wait for it. */
  private resetting: Promise<void> | undefined;
  private closed = false;
  /** Commits made durable since open, and bytes appended (for tests and metrics). */
  durableCommits = 0;
  appendedBytes = 0;

  private constructor(
    readonly directory: string,
    private metadata: Metadata,
    private readonly segments: SegmentInfo[],
    private active: FileHandle,
    private nextCommit: number,
    image: DurableImage,
    readonly recovery: RecoveryReport,
    private readonly segmentBytes: number,
  ) {
    this.image = image;
  }

  /** Opens (creating if new) the data directory and recovers its state; rebuilds a damaged one when `onCorruption` says so. */
  static async open(directory: string, options: FileStorageOptions): Promise<FileStorage> {
    let storage: FileStorage;
    try {
      storage = await FileStorage.recover(directory, options, undefined);
    } catch (error) {
      if (options.onCorruption !== "rebuild" || !(error instanceof StorageCorruptionError)) throw error;
      const rebuild = await rebuildDamaged(directory, { nodeId: options.nodeId, incarnation: options.incarnation ?? 1 }, error);
      storage = await FileStorage.recover(directory, options, rebuild);
    }
    if (options.durabilityJournal === true) {
      storage.journal = true;
      storage.noteDurable();
    }
    return storage;
  }

  /** Test-only (`durabilityJournal`): whether to note what is durable after every fdatasync. */
  private journal = false;

  /** Everything in the active segment is durable now (it was just synced, recovered or created). */
  private noteDurable(): void {
    const active = this.segments.at(-1);
    if (this.journal && active !== undefined) noteDurable(this.directory, active.name, active.bytes);
  }

  private static async recover(directory: string, options: FileStorageOptions, rebuild: RebuildReport | undefined): Promise<FileStorage> {
    await mkdir(directory, { recursive: true });
    const removedFiles: string[] = [];
    let names = await storageEntries(directory);
    for (const name of names.filter((name) => name.endsWith(".tmp"))) {
      await rm(join(directory, name), { force: true });
      removedFiles.push(name);
    }
    let metadata = await readMetadata(directory);
    if (metadata !== undefined && metadata.nodeId !== options.nodeId) throw new StorageIdentityError(directory, options.nodeId, metadata.nodeId);
    if (metadata?.discardSnapshots === true) {
      // A reset that crashed before it removed the old snapshots: finish it.
      const discarded = await discardSnapshots(directory, metadata);
      metadata = discarded.metadata;
      removedFiles.push(...discarded.removed);
      names = await storageEntries(directory);
    }
    names = names.filter((name) => !name.endsWith(".tmp"));
    const segmentNames = names.filter((name) => SEGMENT_PATTERN.test(name));
    let fresh = false;
    if (metadata === undefined && names.length === 1 && names[0] === segmentFileName(1) && (await isEmptyFile(join(directory, names[0])))) {
      // A crash while creating a new directory, before its metadata was written.
      await rm(join(directory, names[0]));
      names = [];
      segmentNames.length = 0;
    }
    if (metadata === undefined) {
      if (names.length > 0) {
        throw new StorageCorruptionError(join(directory, METADATA_FILE), 0, `metadata missing while ${names.length} other files exist`);
      }
      if (options.expectExisting) throw new StorageWipedError(directory);
      metadata = await createDirectory(directory, options);
      segmentNames.push(segmentFileName(1));
      fresh = true;
    }
    // Segments wholly before the first needed one are leftovers of a compaction (or a reset) interrupted by a crash.
    const firstSegment = metadata.firstSegment;
    const leftovers = segmentNames.filter((name) => (segmentNumber(name) as number) < firstSegment);
    if (leftovers.length > 0) {
      await removeSegments(directory, leftovers);
      await syncDirectory(directory);
      removedFiles.push(...leftovers);
    }
    const image = new DurableImage(metadata.promised);
    image.logStart = metadata.logStart;
    image.rebuilding = metadata.rebuilding === true;
    const scan = await scanSegments(
      directory,
      segmentNames.filter((name) => !leftovers.includes(name)),
      metadata,
      image,
    );
    image.snapshot = await readLatestSnapshot(directory, names);
    const incoming = await readIncoming(directory);
    if (fresh) await syncDirectory(directory);
    const activeInfo = scan.segments.at(-1) as SegmentInfo;
    const active = await open(join(directory, activeInfo.name), "a");
    // What recovery read of the active segment may have come from the page cache alone (the process died
    // between a write and its fsync): make it durable before the replica acts on it (a promise, a vote).
    await active.datasync();
    const report: RecoveryReport = {
      fresh,
      tornTail: scan.tornTail,
      segments: scan.segments.length,
      commits: scan.commits,
      records: scan.records,
      removedFiles,
      rebuild,
    };
    const storage = new FileStorage(directory, metadata, scan.segments, active, scan.nextCommit, image, report, options.segmentBytes ?? DEFAULT_SEGMENT_BYTES);
    storage.incoming = incoming;
    return storage;
  }

  /** This directory's metadata: node id, incarnation, promised ballot, log start. */
  get identity(): { readonly nodeId: string; readonly incarnation: number } {
    return { nodeId: this.metadata.nodeId, incarnation: this.metadata.incarnation };
  }

  async load(): Promise<StoredState> {
    this.assertOpen();
    return { ...this.image.toStoredState(), incoming: this.incoming };
  }

  /** Queues a batch for the next group commit; resolves once it is durable. */
  persist(batch: PersistBatch): Promise<void> {
    if (this.resetting !== undefined) return this.resetting.then(() => this.persist(batch));
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new StorageClosedError());
    if (isEmptyBatch(batch)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ batch, resolve, reject });
      if (this.flushing === undefined) this.flushing = this.flushLoop();
    });
  }

  /** Writes a snapshot file atomically as its chunks come, then removes older ones. Runs beside the group commits. */
  writeSnapshot(handle: SnapshotHandle, data: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<StoredSnapshot> {
    return this.serializeSnapshotWrite(async () => {
      const snapshot = await writeSnapshotFile(this.directory, handle, data);
      await removeSnapshotsBefore(this.directory, snapshot.path.slice(this.directory.length + 1));
      return snapshot;
    });
  }

  /** Receives a snapshot into the directory, going on from what an earlier transfer of the same snapshot stored. */
  async receiveSnapshot(identity: SnapshotIdentity): Promise<SnapshotReceiver> {
    while (this.resetting !== undefined) await this.resetting;
    if (this.failure !== undefined) throw this.failure;
    this.assertOpen();
    await this.receiving?.close();
    this.incoming = undefined;
    const receiving = await IncomingSnapshotFile.open(this.directory, identity);
    this.receiving = receiving;
    return {
      get received() {
        return receiving.received;
      },
      append: async (bytes) => {
        this.assertOpen();
        await receiving.append(bytes);
      },
      complete: () =>
        this.serializeSnapshotWrite(async () => {
          if (this.receiving === receiving) this.receiving = undefined;
          return receiving.complete();
        }),
    };
  }

  /** Runs a change to the snapshot files after the ones before it, then makes its snapshot the latest. */
  private serializeSnapshotWrite(write: () => Promise<StoredSnapshot>): Promise<StoredSnapshot> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new StorageClosedError());
    const done = this.snapshotWrites.then(async () => {
      const snapshot = await write();
      this.image.installSnapshot(snapshot);
      return snapshot;
    });
    this.snapshotWrites = done.catch(() => undefined);
    return done;
  }

  /**
   * Forgets everything and durably marks the replica rebuilding (see
   * `Storage.reset`). Comes after the commits and snapshot writes issued
   * before it; those issued while it runs wait for it. Starts a new empty
   * segment and writes metadata naming it (promise zero, log start 0,
   * rebuilding, a new incarnation) before it removes the old segments,
   * snapshots and incoming transfer, so a crash at any point restarts the
   * replica with its old state or empty and rebuilding. A failure leaves the
   * storage failed (`StorageFailedError`): restart to recover.
   */
  async reset(): Promise<void> {
    while (this.resetting !== undefined) await this.resetting;
    if (this.failure !== undefined) throw this.failure;
    this.assertOpen();
    let done = (): void => undefined;
    this.resetting = new Promise<void>((resolve) => {
      done = resolve;
    });
    const snapshotWrites = this.snapshotWrites;
    this.snapshotWrites = this.resetting;
    try {
      await this.flushing;
      await snapshotWrites;
      if (this.failure !== undefined) throw this.failure;
      await this.forget();
    } catch (error) {
      if (this.failure === undefined) this.failure = new StorageFailedError(error);
      throw this.failure;
    } finally {
      this.resetting = undefined;
      done();
    }
  }

  /** The reset itself, with nothing else writing. */
  private async forget(): Promise<void> {
    // Past the active segment, which may be an empty one named `nextCommit`.
    const segment = this.nextCommit + 1;
    const metadata = await markRebuilding(this.directory, { nodeId: this.metadata.nodeId, incarnation: this.metadata.incarnation + 1 }, segment);
    this.metadata = metadata;
    await this.receiving?.close();
    this.receiving = undefined;
    this.incoming = undefined;
    await this.active.close();
    this.active = await open(join(this.directory, segmentFileName(segment)), "a");
    const old = this.segments.splice(0, this.segments.length, { name: segmentFileName(segment), firstCommit: segment, bytes: 0, maxSlot: -1 });
    this.nextCommit = segment;
    this.image.reset(ZERO_BALLOT);
    await removeSegments(
      this.directory,
      old.map((info) => info.name),
    );
    this.metadata = (await discardSnapshots(this.directory, metadata)).metadata;
    this.noteDurable();
  }

  /** Waits for queued writes, then closes the files. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flushing;
    await this.snapshotWrites;
    await this.receiving?.close();
    await this.active.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new StorageClosedError();
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        // Let every caller that is about to persist join this group: a burst
        // issued in one tick, and the callers just resumed by the previous
        // group (they persist again on their continuation). Without this yield
        // the first of them would start a commit alone and halve every group.
        await new Promise<void>((resolve) => setImmediate(resolve));
        const group = this.queue;
        this.queue = [];
        try {
          await this.commit(group.map((queued) => queued.batch));
        } catch (error) {
          this.failure = new StorageFailedError(error);
          for (const queued of [...group, ...this.queue]) queued.reject(this.failure);
          this.queue = [];
          return;
        }
        for (const queued of group) queued.resolve();
      }
    } finally {
      this.flushing = undefined;
    }
  }

  /** One group commit: every batch's frames and one commit frame in one write, one fdatasync, then metadata if it changed. */
  private async commit(batches: readonly PersistBatch[]): Promise<void> {
    const frames: Buffer[] = [];
    let promised: Ballot | undefined;
    let truncateBefore: number | undefined;
    const rebuilt = batches.some((batch) => batch.rebuilt === true);
    const activeInfo = this.segments.at(-1) as SegmentInfo;
    for (const batch of batches) {
      for (const record of batch.records) {
        frames.push(encodeRecord(record));
        if (record.slot > activeInfo.maxSlot) activeInfo.maxSlot = record.slot;
      }
      if (batch.chosen.length > 0) frames.push(encodeChosenMarks(batch.chosen));
      if (batch.promised !== undefined) promised = batch.promised;
      if (batch.truncateBefore !== undefined) truncateBefore = Math.max(truncateBefore ?? 0, batch.truncateBefore);
    }
    if (frames.length > 0) {
      frames.push(encodeCommit({ sequence: this.nextCommit, groupStart: activeInfo.bytes }));
      const buffer = frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames);
      const { bytesWritten } = await this.active.write(buffer);
      if (bytesWritten !== buffer.length) throw new Error(`short write: ${bytesWritten} of ${buffer.length} bytes`);
      await this.active.datasync();
      this.nextCommit += 1;
      activeInfo.bytes += buffer.length;
      this.appendedBytes += buffer.length;
      this.durableCommits += 1;
      this.noteDurable();
    }
    for (const batch of batches) this.image.applyBatch(batch);
    await this.updateMetadata(promised, truncateBefore, rebuilt);
    if (activeInfo.bytes >= this.segmentBytes) await this.roll();
  }

  /**
   * Records a new promise or log start, or the end of a rebuild, atomically
   * (after the group's records are durable), then deletes the segments
   * compaction freed.
   */
  private async updateMetadata(promised: Ballot | undefined, truncateBefore: number | undefined, rebuilt: boolean): Promise<void> {
    let metadata = this.metadata;
    if (promised !== undefined && !ballotsEqual(promised, metadata.promised)) metadata = { ...metadata, promised };
    if (rebuilt && metadata.rebuilding === true) metadata = { ...metadata, rebuilding: undefined };
    let freed: SegmentInfo[] = [];
    if (truncateBefore !== undefined && truncateBefore > metadata.logStart) {
      metadata = { ...metadata, logStart: truncateBefore };
      // A prefix of closed segments whose every record is below the new log start.
      let count = 0;
      while (count < this.segments.length - 1 && (this.segments[count] as SegmentInfo).maxSlot < truncateBefore) count += 1;
      freed = this.segments.slice(0, count);
      if (count > 0) metadata = { ...metadata, firstSegment: (this.segments[count] as SegmentInfo).firstCommit };
    }
    if (metadata === this.metadata) return;
    await writeMetadata(this.directory, metadata);
    this.metadata = metadata;
    if (freed.length > 0) {
      this.segments.splice(0, freed.length);
      await removeSegments(
        this.directory,
        freed.map((segment) => segment.name),
      );
      await syncDirectory(this.directory);
    }
  }

  /**
   * Starts a new segment. The file is created and made durable before the
   * metadata names it, so on open a missing active segment is always a
   * deleted one (corruption) and an empty unnamed one is a crash mid-roll.
   */
  private async roll(): Promise<void> {
    const name = segmentFileName(this.nextCommit);
    const next = await open(join(this.directory, name), "a");
    await syncDirectory(this.directory);
    const metadata = { ...this.metadata, activeSegment: this.nextCommit };
    await writeMetadata(this.directory, metadata);
    this.metadata = metadata;
    await this.active.close();
    this.active = next;
    this.segments.push({ name, firstCommit: this.nextCommit, bytes: 0, maxSlot: -1 });
    this.noteDurable();
  }
}
