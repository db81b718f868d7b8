import { type ApplyContext, type StateMachine, invariant } from "@synod/core";
import { CompactedError, type KvError, type KvErrorCode, kvErrors } from "./errors.js";
import { DEFAULT_EVENT_RETENTION, type EventRetention, EventLog } from "./events.js";
import { FenceTable } from "./fences.js";
import { evaluateTest } from "./guards.js";
import { type Hash64, ZERO_HASH, chainHash, hashFields, hashToHex } from "./hash.js";
import { Journal } from "./journal.js";
import { LeaseTable } from "./leases.js";
import { type KeyNode, MvccStore, entryBytes, toKeyValue } from "./mvcc.js";
import type {
  DeleteOp,
  DeleteRangeOp,
  DeleteResult,
  ErrorResult,
  GetOp,
  GetResult,
  IncrOp,
  KeyRange,
  KeyValue,
  KvEvent,
  KvOp,
  KvQuery,
  KvQueryResult,
  KvResult,
  KvTest,
  PutOp,
  RangeOp,
  RangeResult,
  StatusResult,
} from "./ops.js";
import { parseOp, parseQuery, parseTest } from "./schema.js";
import { type KvSnapshotState, decodeSnapshot, decodeSnapshotStream, encodeSnapshotChunks } from "./snapshot.js";

export interface KvMachineOptions {
  /**
   * Live key and value bytes (UTF-8) the store may hold. A put that would go
   * above it is refused with QUOTA_EXCEEDED and raises the NOSPACE alarm;
   * while the alarm is up every put is refused (the store is read/delete-only)
   * until a delete frees space. It decides results, so it must be equal on
   * every replica (the digest includes it, so a mismatch shows). Default 512 MiB.
   */
  readonly quotaBytes?: number;
  /** How much watch history to keep (default: 100 000 events). */
  readonly eventRetention?: EventRetention;
}

export const DEFAULT_QUOTA_BYTES = 512 * 1024 * 1024;

/** Identifies one client command: every op and guard of a MultiOp share it. */
interface CommandKey {
  readonly slot: number;
  readonly session: string;
  readonly seq: number;
}

/**
 * The replicated KV store: an etcd-like MVCC key space behind core's
 * `StateMachine` interface.
 *
 * **Commands and revisions.** Core calls `apply` once per operation, and for
 * a MultiOp once per guard (`test`) and once per operation of the chosen
 * branch, all with the same context. The machine recognises a new command by
 * a new `(slot, session, seq)` and then (1) does the housekeeping that must
 * happen at a deterministic point: physical compaction, lease expiry by the
 * command's log time, event-log trimming; (2) opens an undo journal. The
 * command's first write takes the next revision and every later write of the
 * same command shares it, so a transaction is one revision however many keys
 * it writes. If an operation fails, the journal rolls the command's writes
 * back and the rest of its operations answer TXN_ABORTED: a command is all or
 * nothing.
 *
 * **Errors are results.** `apply`, `test` and `query` never throw on any
 * input: a malformed operation is an INVALID_REQUEST result (core would stop
 * the replica on a throw, because skipping a slot would diverge).
 */
export class KvMachine implements StateMachine<KvOp, KvTest, KvResult, KvQuery, KvQueryResult> {
  private readonly journal = new Journal();
  private readonly store = new MvccStore(this.journal);
  private readonly leases = new LeaseTable(this.journal);
  private readonly events = new EventLog(this.journal);
  private readonly fences = new FenceTable(this.journal);
  private alarm = false;
  /** A running hash over every event applied, in order: the digest's witness of history. */
  private chain: Hash64 = ZERO_HASH;

  private command: CommandKey | undefined;
  /** The revision the current command's writes share, once it has written. */
  private commandRevision: number | undefined;
  /** Set when an operation of the current command failed: the rest are refused. */
  private commandFailure: KvErrorCode | undefined;

  readonly quotaBytes: number;
  readonly eventRetention: EventRetention;

  constructor(options: KvMachineOptions = {}) {
    this.quotaBytes = options.quotaBytes ?? DEFAULT_QUOTA_BYTES;
    this.eventRetention = options.eventRetention ?? DEFAULT_EVENT_RETENTION;
  }

  // ------------------------------------------------------------ StateMachine

  apply(input: KvOp, context: ApplyContext): KvResult {
    this.enter(context);
    if (this.commandFailure !== undefined) return failed(kvErrors.txnAborted(this.commandFailure));
    const parsed = parseOp(input);
    const result = parsed.ok ? this.execute(parsed.value, context) : failed(kvErrors.invalidRequest(parsed.reason));
    if (result.type === "error") this.fail(result.error);
    return result;
  }

  test(input: KvTest, context: ApplyContext): boolean {
    this.enter(context);
    if (this.commandFailure !== undefined) return false;
    const parsed = parseTest(input);
    if (!parsed.ok) {
      // The branch then answers TXN_ABORTED (cause INVALID_REQUEST) for each of its operations.
      this.fail(kvErrors.invalidRequest(parsed.reason));
      return false;
    }
    return evaluateTest(parsed.value, this.store);
  }

  query(input: KvQuery): KvQueryResult {
    const parsed = parseQuery(input);
    if (!parsed.ok) return failed(kvErrors.invalidRequest(parsed.reason));
    const query = parsed.value;
    switch (query.type) {
      case "get":
        return this.get(query);
      case "range":
        return this.range(query);
      case "status":
        return this.status();
      case "lease": {
        const info = this.leases.info(query.id);
        return info === undefined ? failed(kvErrors.leaseNotFound(query.id)) : { type: "lease", ...info, keys: this.leases.keysOf(query.id) };
      }
      case "leases":
        return { type: "leases", leases: this.leases.list() };
      case "events": {
        const start = this.historyStartRevision;
        if (query.fromRevision < start) return failed(kvErrors.compacted(start));
        const range: KeyRange = query.end === undefined ? { start: query.start ?? "" } : { start: query.start ?? "", end: query.end };
        return { type: "events", revision: this.store.revision, events: this.eventsSince(query.fromRevision, range, query.limit ?? 0) };
      }
    }
  }

  /**
   * Captures the state now (copy-on-write: O(keys / 512 + leases + events))
   * and serializes it when called, as chunks of about 1 MiB made as they are
   * asked for, while applying goes on (the capture does not change). Runs
   * between commands, so it may first finish the lazy housekeeping; the bytes
   * then hold no history that reads can no longer reach.
   */
  snapshot(): () => Generator<Uint8Array> {
    this.endCommand();
    this.store.compactPhysically();
    this.events.trim(this.eventRetention, this.store.revision, this.store.compactRevision);
    const state = {
      revision: this.store.revision,
      compactRevision: this.store.compactRevision,
      historyStart: this.events.startRevision,
      alarm: this.alarm,
      chain: this.chain,
      keys: this.store.capture(),
      leases: this.leases.list(),
      events: this.events.retained(),
      fences: this.fences.list(),
    };
    return () => encodeSnapshotChunks(state);
  }

  /** Replaces the state with a snapshot's; throws `SnapshotInvalidError` (and changes nothing) on bad bytes. */
  restore(data: Uint8Array): void {
    this.load(decodeSnapshot(data));
  }

  /**
   * `restore` from chunks (split anywhere), decoded as they come: the new
   * state is built aside and replaces the old one only once the last chunk
   * has decoded, so the encoding is never held whole and bad bytes
   * (`SnapshotInvalidError`) change nothing.
   */
  async restoreFrom(chunks: AsyncIterable<Uint8Array>): Promise<void> {
    this.load(await decodeSnapshotStream(chunks));
  }

  /** Replaces the whole state with a decoded (so valid) snapshot's and rebuilds what is derived from it. */
  private load(state: KvSnapshotState): void {
    this.endCommand();
    this.store.load(state.keys, state.revision, state.compactRevision);
    const leased: [string, number][] = [];
    this.store.forEachHead((key, head) => {
      if (!head.deleted && head.lease !== 0) leased.push([key, head.lease]);
    });
    this.leases.load(state.leases, leased);
    this.events.load(state.events, state.historyStart);
    this.fences.load(state.fences);
    this.alarm = state.alarm;
    this.chain = state.chain;
  }

  /**
   * O(1): the revision, compaction point, live totals (count, bytes, an
   * order-independent hash of every live key's value and metadata), the
   * leases' hash, the alarm, the quota, and the chain hash of every event.
   */
  digest(): string {
    const store = this.store;
    const parts = [store.revision, store.compactRevision, store.liveCount, store.liveBytes, this.alarm ? 1 : 0, this.quotaBytes];
    return `kv1:${parts.join(":")}:${hashToHex(store.liveHash)}:${hashToHex(this.leases.hash)}:${hashToHex(this.chain)}:${hashToHex(this.fences.hash)}`;
  }

  /**
   * Recounts what the machine keeps incrementally (live totals, hashes, lease
   * attachments) and checks every history chain and the event order; throws
   * `InvariantError` on a mismatch. O(state): for tests and the simulator.
   */
  checkInvariants(): void {
    this.store.checkInvariants();
    const leased = new Map<string, number>();
    this.store.forEachHead((key, head) => {
      if (head.deleted || head.lease === 0) return;
      invariant(this.leases.has(head.lease), () => `${key} is on missing lease ${head.lease}`);
      leased.set(key, head.lease);
    });
    this.leases.checkInvariants(leased);
    this.events.checkInvariants(this.store.revision);
  }

  // ------------------------------------------------------------ reads outside the log

  /** The oldest revision `eventsSince` can start from. */
  get historyStartRevision(): number {
    return Math.max(this.events.startRevision, this.store.compactRevision);
  }

  get revision(): number {
    return this.store.revision;
  }

  /** When (log time) the first lease expires, unless kept alive; undefined without leases. */
  get nextLeaseExpiry(): number | undefined {
    return this.leases.nextExpiry();
  }

  /**
   * The changes at revision ≥ `fromRevision` to keys in `range`, oldest first
   * (at most `limit`, 0 for all). Throws `CompactedError` when part of that
   * history is gone: the watcher must re-read and resume from
   * `compactRevision` or later.
   */
  eventsSince(fromRevision: number, range: KeyRange = { start: "" }, limit = 0): KvEvent[] {
    const start = this.historyStartRevision;
    if (fromRevision < start) throw new CompactedError(start);
    return this.events.since(fromRevision, range.start, range.end, limit);
  }

  status(): StatusResult {
    return {
      type: "status",
      revision: this.store.revision,
      compactRevision: this.store.compactRevision,
      historyStartRevision: this.historyStartRevision,
      keyCount: this.store.liveCount,
      bytes: this.store.liveBytes,
      quotaBytes: this.quotaBytes,
      alarm: this.alarm,
      leaseCount: this.leases.size,
    };
  }

  // ------------------------------------------------------------ commands

  /** Starts a new command when the context names one; runs the housekeeping due at its log time. */
  private enter(context: ApplyContext): void {
    const current = this.command;
    if (current !== undefined && current.slot === context.slot && current.seq === context.seq && current.session === context.session) return;
    this.command = { slot: context.slot, session: context.session, seq: context.seq };
    this.commandRevision = undefined;
    this.commandFailure = undefined;
    this.store.compactPhysically();
    this.expireLeases(context.time);
    this.events.trim(this.eventRetention, this.store.revision, this.store.compactRevision);
    this.leases.compactHeap();
    // Housekeeping is final, whatever this command does.
    this.journal.clear();
  }

  private endCommand(): void {
    this.command = undefined;
    this.commandRevision = undefined;
    this.commandFailure = undefined;
    this.journal.clear();
  }

  private fail(error: KvError): void {
    this.journal.rollback();
    this.commandRevision = undefined;
    this.commandFailure = error.code;
    // After the rollback, so the alarm outlives it.
    if (error.code === "QUOTA_EXCEEDED") this.alarm = true;
  }

  /** The revision this command's writes share, taken at its first write. */
  private writeRevision(): number {
    this.commandRevision ??= this.store.bumpRevision();
    return this.commandRevision;
  }

  /** Expires every lease due at `now`, in (expiry, id) order, each in its own revision. */
  private expireLeases(now: number): void {
    for (let id = this.leases.takeDue(now); id !== undefined; id = this.leases.takeDue(now)) {
      this.revokeLease(id, () => this.store.bumpRevision());
    }
  }

  private execute(op: KvOp, context: ApplyContext): KvResult {
    if ((op.type === "put" || op.type === "delete" || op.type === "delete-range" || op.type === "incr") && op.fence !== undefined) {
      const { name, token } = op.fence;
      if (!this.fences.admit(name, token)) return failed(kvErrors.fenced(name, token, this.fences.get(name)));
    }
    switch (op.type) {
      case "put":
        return this.put(op);
      case "delete":
        return this.deleteKey(op);
      case "delete-range":
        return this.deleteRange(op);
      case "get":
        return this.get(op);
      case "range":
        return this.range(op);
      case "incr":
        return this.incr(op);
      case "lease-grant":
        if (this.leases.has(op.id)) return failed(kvErrors.leaseExists(op.id));
        return { type: "lease-grant", ...this.leases.grant(op.id, op.ttlMs, context.time) };
      case "lease-keepalive": {
        const info = this.leases.keepAlive(op.id, context.time);
        return info === undefined ? failed(kvErrors.leaseNotFound(op.id)) : { type: "lease-keepalive", ...info };
      }
      case "lease-revoke": {
        if (!this.leases.has(op.id)) return failed(kvErrors.leaseNotFound(op.id));
        const deleted = this.revokeLease(op.id, () => this.writeRevision());
        return { type: "lease-revoke", id: op.id, revision: this.store.revision, deleted };
      }
      case "expire-leases":
        return { type: "expire-leases", revision: this.store.revision };
      case "compact":
        if (op.revision > this.store.revision) return failed(kvErrors.futureRevision(op.revision, this.store.revision));
        if (op.revision <= this.store.compactRevision) return failed(kvErrors.compacted(this.store.compactRevision));
        this.store.compact(op.revision);
        return { type: "compact", compactRevision: op.revision };
    }
  }

  // ------------------------------------------------------------ writes

  private put(op: PutOp): KvResult {
    const lease = op.lease ?? 0;
    const previous = this.store.current(op.key);
    const refused = this.admitPut(op.key, op.value, lease, previous);
    if (refused !== undefined) return failed(refused);
    const revision = this.writeRevision();
    this.writeValue(op.key, op.value, lease, revision);
    if (op.prevKv === true && previous !== undefined) return { type: "put", revision, prevKv: toKeyValue(op.key, previous) };
    return { type: "put", revision };
  }

  private incr(op: IncrOp): KvResult {
    const previous = this.store.current(op.key);
    if (previous !== undefined && !DECIMAL.test(previous.value)) return failed(kvErrors.notANumber(op.key));
    const value = (BigInt(previous?.value ?? 0) + BigInt(op.delta)).toString();
    const lease = op.lease ?? previous?.lease ?? 0;
    const refused = this.admitPut(op.key, value, lease, previous);
    if (refused !== undefined) return failed(refused);
    const revision = this.writeRevision();
    this.writeValue(op.key, value, lease, revision);
    return { type: "incr", revision, value };
  }

  /** Why a put may not happen: its lease is missing, or the quota (or the alarm) refuses it. */
  private admitPut(key: string, value: string, lease: number, previous: KeyNode | undefined): KvError | undefined {
    if (lease !== 0 && !this.leases.has(lease)) return kvErrors.leaseNotFound(lease);
    const requested = entryBytes(key, value);
    const freed = previous === undefined ? 0 : entryBytes(key, previous.value);
    const used = this.store.liveBytes;
    if (this.alarm || used - freed + requested > this.quotaBytes) return kvErrors.quotaExceeded(this.quotaBytes, used, requested);
    return undefined;
  }

  private deleteKey(op: DeleteOp): DeleteResult {
    if (this.store.current(op.key) === undefined) return noneDeleted(this.store.revision, op.prevKv);
    const revision = this.writeRevision();
    const previous = this.removeKey(op.key, revision);
    return op.prevKv === true ? { type: "delete", revision, deleted: 1, prevKvs: [toKeyValue(op.key, previous)] } : { type: "delete", revision, deleted: 1 };
  }

  private deleteRange(op: DeleteRangeOp): DeleteResult {
    const keys: string[] = [];
    this.store.scan(op.start, op.end, this.store.revision, (key) => {
      keys.push(key);
    });
    if (keys.length === 0) return noneDeleted(this.store.revision, op.prevKv);
    const revision = this.writeRevision();
    const previous = keys.map((key) => toKeyValue(key, this.removeKey(key, revision)));
    return op.prevKv === true ? { type: "delete", revision, deleted: keys.length, prevKvs: previous } : { type: "delete", revision, deleted: keys.length };
  }

  /** Deletes the lease's keys (in key order, in one revision if any) and the lease; returns how many keys. */
  private revokeLease(id: number, revisionForWrites: () => number): number {
    const keys = this.leases.keysOf(id);
    if (keys.length > 0) {
      const revision = revisionForWrites();
      for (const key of keys) this.removeKey(key, revision);
    }
    this.leases.remove(id);
    return keys.length;
  }

  /** Every put goes through here: the key's new version, its lease attachment, the event. */
  private writeValue(key: string, value: string, lease: number, revision: number): void {
    const { node, previous } = this.store.put(key, value, lease, revision);
    const previousLease = previous?.lease ?? 0;
    if (previousLease !== lease) {
      if (previousLease !== 0) this.leases.detach(previousLease, key);
      if (lease !== 0) this.leases.attach(lease, key);
    }
    const event: KvEvent =
      previous === undefined
        ? { type: "put", revision, key, value, createRevision: node.createRevision, version: node.version, lease }
        : { type: "put", revision, key, value, createRevision: node.createRevision, version: node.version, lease, prevValue: previous.value };
    this.record(event);
  }

  /** Every delete goes through here: the tombstone, the lease detachment, the event, the alarm. */
  private removeKey(key: string, revision: number): KeyNode {
    const previous = this.store.remove(key, revision);
    if (previous.lease !== 0) this.leases.detach(previous.lease, key);
    this.record({ type: "delete", revision, key, prevValue: previous.value });
    if (this.alarm) this.setAlarm(false);
    return previous;
  }

  private record(event: KvEvent): void {
    this.events.append(event);
    const before = this.chain;
    this.chain = chainHash(before, hashEvent(event));
    this.journal.record(() => {
      this.chain = before;
    });
  }

  private setAlarm(alarm: boolean): void {
    const before = this.alarm;
    this.alarm = alarm;
    this.journal.record(() => {
      this.alarm = before;
    });
  }

  // ------------------------------------------------------------ reads

  private get(op: GetOp): GetResult | ErrorResult {
    const revision = this.readRevision(op.revision);
    if (typeof revision !== "number") return failed(revision);
    const node = this.store.at(op.key, revision);
    return { type: "get", revision, kv: node === undefined ? null : toKeyValue(op.key, node) };
  }

  private range(op: RangeOp): RangeResult | ErrorResult {
    const revision = this.readRevision(op.revision);
    if (typeof revision !== "number") return failed(revision);
    const limit = op.limit ?? 0;
    const kvs: KeyValue[] = [];
    let count = 0;
    this.store.scan(op.start, op.end, revision, (key, node) => {
      count += 1;
      if (op.countOnly !== true && (limit === 0 || kvs.length < limit)) kvs.push(toKeyValue(key, node, op.keysOnly === true));
    });
    const last = kvs[kvs.length - 1];
    if (count > kvs.length && op.countOnly !== true && last !== undefined) {
      return { type: "range", revision, kvs, count, more: true, next: `${last.key}\u0000` };
    }
    return { type: "range", revision, kvs, count, more: false };
  }

  /** The revision a read asks for (0 or absent: the current one), or why it cannot be read. */
  private readRevision(requested: number | undefined): number | KvError {
    const current = this.store.revision;
    const revision = requested === undefined || requested === 0 ? current : requested;
    if (revision > current) return kvErrors.futureRevision(revision, current);
    if (revision < this.store.compactRevision) return kvErrors.compacted(this.store.compactRevision);
    return revision;
  }
}

/**
 * What `incr` accepts as a number. The length cap keeps BigInt parsing (worse
 * than linear in the digits) from stalling the apply loop on a huge value.
 */
const DECIMAL = /^[+-]?\d{1,4096}$/;

function failed(error: KvError): ErrorResult {
  return { type: "error", error };
}

function noneDeleted(revision: number, prevKv: boolean | undefined): DeleteResult {
  return prevKv === true ? { type: "delete", revision, deleted: 0, prevKvs: [] } : { type: "delete", revision, deleted: 0 };
}

function hashEvent(event: KvEvent): Hash64 {
  return event.type === "put"
    ? hashFields(["put", event.revision, event.key, event.value, event.createRevision, event.version, event.lease])
    : hashFields(["delete", event.revision, event.key]);
}
