import { invariant } from "@synod/core";
import { type Hash64, ZERO_HASH, addHash, hashFields, subtractHash } from "./hash.js";
import type { Journal } from "./journal.js";
import type { KeyValue } from "./ops.js";
import { OrderedMap } from "./ordered-map.js";
import { utf8Length } from "./text.js";

/**
 * One version of one key, immutable. A key's history is a chain of these,
 * newest first (`previous` points back in time), so a write is O(1), a read
 * at the current revision is O(1), a read at an older revision walks back
 * only as far as it needs, and a snapshot capture can share every node.
 */
export interface KeyNode {
  readonly modRevision: number;
  /** 0 for a tombstone. */
  readonly createRevision: number;
  /** Modifications since creation; 0 for a tombstone. */
  readonly version: number;
  /** `""` for a tombstone. */
  readonly value: string;
  /** 0 for none, and for a tombstone. */
  readonly lease: number;
  /** A tombstone: the key was deleted at `modRevision`. */
  readonly deleted: boolean;
  readonly previous: KeyNode | undefined;
}

/** The state of the key at `revision`, if it existed then. */
export function visibleAt(head: KeyNode, revision: number): KeyNode | undefined {
  let node: KeyNode | undefined = head;
  while (node !== undefined && node.modRevision > revision) node = node.previous;
  return node === undefined || node.deleted ? undefined : node;
}

export function toKeyValue(key: string, node: KeyNode, keysOnly = false): KeyValue {
  return {
    key,
    value: keysOnly ? "" : node.value,
    createRevision: node.createRevision,
    modRevision: node.modRevision,
    version: node.version,
    lease: node.lease,
  };
}

/** What the quota counts for a live key: its UTF-8 key and value bytes. */
export function entryBytes(key: string, value: string): number {
  return utf8Length(key) + utf8Length(value);
}

function liveHash(key: string, node: KeyNode): Hash64 {
  return hashFields([key, node.value, node.createRevision, node.modRevision, node.version, node.lease]);
}

/**
 * The multi-version key space (etcd's mvcc): every key's history down to the
 * compaction point, the global revision, and running totals of the live keys
 * (count, bytes, an order-independent hash) kept in O(1) per write.
 *
 * Revisions follow etcd: a new store is at revision 1 and its first write is
 * revision 2; each write command (or transaction) that changes anything takes
 * the next revision. The caller decides which writes share a revision.
 *
 * Every mutation records its inverse in the journal, so a failed transaction
 * leaves no trace. Compaction is logical at once (`compactRevision`) and
 * physical lazily (`compactPhysically`, between commands), because dropping
 * history cannot be undone.
 */
export class MvccStore {
  private keys = new OrderedMap<KeyNode>();
  private currentRevision = 1;
  private compactedLogically = 0;
  private compactedPhysically = 0;
  private live = 0;
  private bytes = 0;
  private hash: Hash64 = ZERO_HASH;
  /** Keys whose chain holds more than one node or a tombstone: the only ones compaction can shorten. */
  private readonly withHistory = new Set<string>();

  constructor(private readonly journal: Journal) {}

  get revision(): number {
    return this.currentRevision;
  }

  /** Reads below this revision fail with COMPACTED. */
  get compactRevision(): number {
    return this.compactedLogically;
  }

  get liveCount(): number {
    return this.live;
  }

  get liveBytes(): number {
    return this.bytes;
  }

  get liveHash(): Hash64 {
    return this.hash;
  }

  /** Takes the next revision. */
  bumpRevision(): number {
    const before = this.currentRevision;
    this.currentRevision = before + 1;
    this.journal.record(() => {
      this.currentRevision = before;
    });
    return this.currentRevision;
  }

  /** The key's current state, if it exists. */
  current(key: string): KeyNode | undefined {
    const head = this.keys.get(key);
    return head === undefined || head.deleted ? undefined : head;
  }

  /** The key's state at `revision` (which the caller has checked is readable). */
  at(key: string, revision: number): KeyNode | undefined {
    const head = this.keys.get(key);
    return head === undefined ? undefined : visibleAt(head, revision);
  }

  /** Visits the keys of `[start, end)` that existed at `revision`, in order, until `visit` returns false. */
  scan(start: string, end: string | undefined, revision: number, visit: (key: string, node: KeyNode) => boolean | void): void {
    this.keys.forEachInRange(start, end, (key, head) => {
      const node = visibleAt(head, revision);
      return node === undefined ? true : visit(key, node);
    });
  }

  /** Writes `value` at `revision`; returns the new node and the key's previous live state. */
  put(key: string, value: string, lease: number, revision: number): { readonly node: KeyNode; readonly previous: KeyNode | undefined } {
    const head = this.keys.get(key);
    const previous = head === undefined || head.deleted ? undefined : head;
    const node: KeyNode = {
      modRevision: revision,
      createRevision: previous === undefined ? revision : previous.createRevision,
      version: previous === undefined ? 1 : previous.version + 1,
      value,
      lease,
      deleted: false,
      previous: head,
    };
    this.replaceHead(key, head, node);
    return { node, previous };
  }

  /** Writes a tombstone for a live key at `revision`; returns its last live state. */
  remove(key: string, revision: number): KeyNode {
    const head = this.keys.get(key);
    invariant(head !== undefined && !head.deleted, () => `remove of absent key ${key}: the caller checks first`);
    const tombstone: KeyNode = { modRevision: revision, createRevision: 0, version: 0, value: "", lease: 0, deleted: true, previous: head };
    this.replaceHead(key, head, tombstone);
    return head;
  }

  /** Marks history before `revision` as gone; the memory is reclaimed by `compactPhysically`. */
  compact(revision: number): void {
    const before = this.compactedLogically;
    this.compactedLogically = revision;
    this.journal.record(() => {
      this.compactedLogically = before;
    });
  }

  /**
   * Drops the nodes no read at or after `compactRevision` can see: for each
   * key, everything older than its newest node at or before the compaction
   * point, and that node too if it is a tombstone. Only between commands (it
   * is not journaled).
   */
  compactPhysically(): void {
    const revision = this.compactedLogically;
    if (this.compactedPhysically >= revision) return;
    this.compactedPhysically = revision;
    for (const key of this.withHistory) {
      const head = this.keys.get(key);
      const kept = head === undefined ? undefined : retainFrom(head, revision);
      if (kept === undefined) {
        this.keys.delete(key);
        this.withHistory.delete(key);
        continue;
      }
      if (kept !== head) this.keys.set(key, kept);
      if (kept.previous === undefined && !kept.deleted) this.withHistory.delete(key);
    }
  }

  /** A frozen view of the key space for a snapshot: shares every node, O(keys / 512) to take. */
  capture(): OrderedMap<KeyNode> {
    return this.keys.clone();
  }

  /** Replaces the whole state (from a validated snapshot). */
  load(keys: OrderedMap<KeyNode>, revision: number, compactRevision: number): void {
    this.keys = keys;
    this.currentRevision = revision;
    this.compactedLogically = compactRevision;
    this.compactedPhysically = compactRevision;
    this.live = 0;
    this.bytes = 0;
    this.hash = ZERO_HASH;
    this.withHistory.clear();
    keys.forEach((key, head) => {
      if (head.previous !== undefined || head.deleted) this.withHistory.add(key);
      if (head.deleted) return;
      this.live += 1;
      this.bytes += entryBytes(key, head.value);
      this.hash = addHash(this.hash, liveHash(key, head));
    });
  }

  /**
   * Recomputes the running totals from the key space and checks every chain
   * (ordered revisions, versions that add up). O(history): for tests and the
   * simulator, after every step.
   */
  checkInvariants(): void {
    this.keys.checkInvariants();
    invariant(this.compactedLogically <= this.currentRevision, "compacted past the current revision");
    let live = 0;
    let bytes = 0;
    let hash = ZERO_HASH;
    this.keys.forEach((key, head) => {
      invariant(head.modRevision <= this.currentRevision, () => `${key} modified in the future`);
      for (let node: KeyNode | undefined = head; node?.previous !== undefined; node = node.previous) {
        const older: KeyNode = node.previous;
        invariant(older.modRevision <= node.modRevision, () => `${key}: history out of order`);
        if (!node.deleted && !older.deleted) invariant(node.version === older.version + 1 && node.createRevision === older.createRevision, () => `${key}: versions do not add up`);
        if (!node.deleted && older.deleted) invariant(node.version === 1 && node.createRevision === node.modRevision, () => `${key}: recreated without a fresh version`);
      }
      invariant(head.previous === undefined && !head.deleted ? true : this.withHistory.has(key), () => `${key}: history not tracked for compaction`);
      if (head.deleted) return;
      live += 1;
      bytes += entryBytes(key, head.value);
      hash = addHash(hash, liveHash(key, head));
    });
    invariant(live === this.live && bytes === this.bytes, () => `live totals ${this.live}/${this.bytes}, recounted ${live}/${bytes}`);
    invariant(hash.high === this.hash.high && hash.low === this.hash.low, "live hash differs from a recount");
  }

  /** Visits every key's head, in order (for checks and snapshots). */
  forEachHead(visit: (key: string, head: KeyNode) => void): void {
    this.keys.forEach(visit);
  }

  private replaceHead(key: string, head: KeyNode | undefined, next: KeyNode): void {
    const saved = { live: this.live, bytes: this.bytes, hash: this.hash };
    const addedHistory = head !== undefined && !this.withHistory.has(key);
    if (head !== undefined && !head.deleted) {
      this.live -= 1;
      this.bytes -= entryBytes(key, head.value);
      this.hash = subtractHash(this.hash, liveHash(key, head));
    }
    if (!next.deleted) {
      this.live += 1;
      this.bytes += entryBytes(key, next.value);
      this.hash = addHash(this.hash, liveHash(key, next));
    }
    this.keys.set(key, next);
    if (addedHistory) this.withHistory.add(key);
    this.journal.record(() => {
      if (head === undefined) this.keys.delete(key);
      else this.keys.set(key, head);
      if (addedHistory) this.withHistory.delete(key);
      this.live = saved.live;
      this.bytes = saved.bytes;
      this.hash = saved.hash;
    });
  }
}

/**
 * The chain from `head` that reads at or after `revision` need, rebuilt
 * (nodes are shared with snapshots, so they are copied, never cut in place).
 * Returns `head` itself when nothing can go, undefined when nothing stays.
 */
function retainFrom(head: KeyNode, revision: number): KeyNode | undefined {
  const newer: KeyNode[] = [];
  let node: KeyNode | undefined = head;
  while (node !== undefined && node.modRevision > revision) {
    newer.push(node);
    node = node.previous;
  }
  if (node === undefined) return head;
  if (node.previous === undefined && !node.deleted) return head;
  let rebuilt: KeyNode | undefined = node.deleted ? undefined : { ...node, previous: undefined };
  for (let index = newer.length - 1; index >= 0; index -= 1) rebuilt = { ...(newer[index] as KeyNode), previous: rebuilt };
  return rebuilt;
}
