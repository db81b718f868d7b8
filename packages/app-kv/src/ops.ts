import type { KvError } from "./errors.js";

/*
 * The KV store's vocabulary: operations (applied through the log), guards
 * (MultiOp tests), queries (read from the applied state) and their results.
 * Everything here is plain JSON, because it crosses the wire and sits in the
 * log and in core's session table. `schema.ts` mirrors these types with zod
 * for the boundary; a type test keeps the two equal.
 *
 * Keys and values are strings, ordered by UTF-16 code units (JavaScript's
 * `<`). That is UTF-8 byte order (etcd's) for every key except those that mix
 * characters U+E000–U+FFFF with characters above U+FFFF.
 */

// ---------------------------------------------------------------- data

/** A key as it is (or was, at some revision): etcd's `KeyValue`. */
export interface KeyValue {
  readonly key: string;
  /** `""` when read with `keysOnly`. */
  readonly value: string;
  /** The revision of the key's last creation (a put on an absent key). */
  readonly createRevision: number;
  /** The revision of the key's last modification. */
  readonly modRevision: number;
  /** Number of modifications since creation: 1 after the creating put, reset by delete. */
  readonly version: number;
  /** The lease the key is attached to, 0 for none. */
  readonly lease: number;
}

/** One change of one key, as watchers see it. Events of one revision are ordered by key. */
export type KvEvent =
  | {
      readonly type: "put";
      readonly revision: number;
      readonly key: string;
      readonly value: string;
      readonly createRevision: number;
      readonly version: number;
      readonly lease: number;
      /** The value before this put; absent when the put created the key. */
      readonly prevValue?: string;
    }
  | {
      readonly type: "delete";
      readonly revision: number;
      readonly key: string;
      readonly prevValue: string;
    };

/** Keys in `[start, end)`; `end` absent means every key from `start` on. Build with `prefixRange` / `keyRange`. */
export interface KeyRange {
  readonly start: string;
  readonly end?: string;
}

// ---------------------------------------------------------------- operations

/**
 * A fencing token on a write: the write applies only if `token` is at least
 * the highest token any write named `name` has carried (and then raises it).
 * Use the token of a lock grant (`@synod/app-lock`) and the lock's name.
 */
export interface Fence {
  readonly name: string;
  readonly token: number;
}

export interface PutOp {
  readonly type: "put";
  readonly key: string;
  readonly value: string;
  /** Attach the key to this lease; absent or 0 detaches it from any lease (etcd semantics). */
  readonly lease?: number;
  /** Return the key's previous state. */
  readonly prevKv?: boolean;
  /** Refused with FENCED when a higher token was seen for this fence. */
  readonly fence?: Fence;
}

export interface DeleteOp {
  readonly type: "delete";
  readonly key: string;
  readonly prevKv?: boolean;
  /** Refused with FENCED when a higher token was seen for this fence. */
  readonly fence?: Fence;
}

/** Deletes every key in `[start, end)` (all from `start` when `end` is absent) in one revision. */
export interface DeleteRangeOp {
  readonly type: "delete-range";
  readonly start: string;
  readonly end?: string;
  readonly prevKv?: boolean;
  /** Refused with FENCED when a higher token was seen for this fence. */
  readonly fence?: Fence;
}

export interface GetOp {
  readonly type: "get";
  readonly key: string;
  /** Read as of this revision; absent or 0 reads the current state. */
  readonly revision?: number;
}

/**
 * An ordered read of `[start, end)`. To paginate consistently, pass the first
 * page's `revision` with every later page and start each at the previous
 * page's `next`.
 */
export interface RangeOp {
  readonly type: "range";
  readonly start: string;
  readonly end?: string;
  /** At most this many keys (0 or absent: no limit). `count` still counts them all. */
  readonly limit?: number;
  readonly revision?: number;
  /** Return keys and metadata with empty values. */
  readonly keysOnly?: boolean;
  /** Return only `count`. */
  readonly countOnly?: boolean;
}

/**
 * Adds `delta` to a decimal integer value (an absent key counts as 0), with
 * arbitrary precision. Exactly once, like every command, through core's
 * session table. Keeps the key's lease unless `lease` is given.
 */
export interface IncrOp {
  readonly type: "incr";
  readonly key: string;
  /** A decimal integer: a safe-integer number or a string of any length. */
  readonly delta: number | string;
  readonly lease?: number;
  /** Refused with FENCED when a higher token was seen for this fence. */
  readonly fence?: Fence;
}

/**
 * Grants lease `id` (chosen by the client, so that a retried grant is the
 * same grant), expiring `ttlMs` of log time after the grant unless kept alive.
 */
export interface LeaseGrantOp {
  readonly type: "lease-grant";
  readonly id: number;
  readonly ttlMs: number;
}

/** Revokes a lease and deletes its keys, in one revision. */
export interface LeaseRevokeOp {
  readonly type: "lease-revoke";
  readonly id: number;
}

/** Pushes a lease's expiry to `ttlMs` after now (log time). */
export interface LeaseKeepAliveOp {
  readonly type: "lease-keepalive";
  readonly id: number;
}

/**
 * Does nothing but let log time act: leases due at this command's log time
 * expire (as they do at the start of every command). The leader proposes it
 * when a lease is due and the log is otherwise idle.
 */
export interface ExpireLeasesOp {
  readonly type: "expire-leases";
}

/** Drops history before `revision`: reads and watches at older revisions then fail with `COMPACTED`. */
export interface CompactOp {
  readonly type: "compact";
  readonly revision: number;
}

/** Operations that may appear in a transaction branch (`validateTxn` enforces it; the machine applies anything). */
export type KvTxnOp = PutOp | DeleteOp | DeleteRangeOp | GetOp | RangeOp | IncrOp;

export type KvOp = KvTxnOp | LeaseGrantOp | LeaseRevokeOp | LeaseKeepAliveOp | ExpireLeasesOp | CompactOp;

// ---------------------------------------------------------------- guards

export type CompareOperator = "equal" | "not-equal" | "greater" | "less";

/**
 * etcd's `Compare`. With `end`, every key in `[key, end)` must satisfy it. A
 * missing key has version, createRevision, modRevision and lease 0, and fails
 * every value comparison (as in etcd: "no value" is not "empty value").
 */
export type CompareTest =
  | {
      readonly type: "compare";
      readonly key: string;
      readonly end?: string;
      readonly target: "value";
      readonly operator: CompareOperator;
      readonly value: string;
    }
  | {
      readonly type: "compare";
      readonly key: string;
      readonly end?: string;
      readonly target: "version" | "createRevision" | "modRevision" | "lease";
      readonly operator: CompareOperator;
      readonly value: number;
    };

/** Holds when the key exists (`exists`) or does not (`absent`). */
export type ExistenceTest = { readonly type: "exists"; readonly key: string } | { readonly type: "absent"; readonly key: string };

export type KvTest = CompareTest | ExistenceTest;

// ---------------------------------------------------------------- queries

export interface StatusQuery {
  readonly type: "status";
}
export interface LeaseQuery {
  readonly type: "lease";
  readonly id: number;
}
export interface LeasesQuery {
  readonly type: "leases";
}
/** Events with revision ≥ `fromRevision` in `[start, end)`, oldest first. */
export interface EventsQuery {
  readonly type: "events";
  readonly fromRevision: number;
  readonly start?: string;
  readonly end?: string;
  readonly limit?: number;
}

export type KvQuery = GetOp | RangeOp | StatusQuery | LeaseQuery | LeasesQuery | EventsQuery;

// ---------------------------------------------------------------- results

export interface PutResult {
  readonly type: "put";
  /** The revision of this write (shared by every write of the same transaction). */
  readonly revision: number;
  readonly prevKv?: KeyValue;
}

export interface DeleteResult {
  readonly type: "delete";
  /** The revision of the delete, or the current revision when nothing was deleted. */
  readonly revision: number;
  readonly deleted: number;
  readonly prevKvs?: readonly KeyValue[];
}

export interface GetResult {
  readonly type: "get";
  /** The revision read at. */
  readonly revision: number;
  readonly kv: KeyValue | null;
}

export interface RangeResult {
  readonly type: "range";
  /** The revision read at: pass it with the next page. */
  readonly revision: number;
  readonly kvs: readonly KeyValue[];
  /** Every key in the range at that revision, whatever the limit. */
  readonly count: number;
  /** More keys follow the last one returned. */
  readonly more: boolean;
  /** Where the next page starts (present when `more`). */
  readonly next?: string;
}

export interface IncrResult {
  readonly type: "incr";
  readonly revision: number;
  readonly value: string;
}

export interface LeaseGrantResult {
  readonly type: "lease-grant";
  readonly id: number;
  readonly ttlMs: number;
  /** Log time at which the lease expires unless kept alive. */
  readonly expiresAt: number;
}

export interface LeaseKeepAliveResult {
  readonly type: "lease-keepalive";
  readonly id: number;
  readonly ttlMs: number;
  readonly expiresAt: number;
}

export interface LeaseRevokeResult {
  readonly type: "lease-revoke";
  readonly id: number;
  readonly revision: number;
  readonly deleted: number;
}

export interface ExpireLeasesResult {
  readonly type: "expire-leases";
  readonly revision: number;
}

export interface CompactResult {
  readonly type: "compact";
  readonly compactRevision: number;
}

export interface ErrorResult {
  readonly type: "error";
  readonly error: KvError;
}

export type KvResult =
  | PutResult
  | DeleteResult
  | GetResult
  | RangeResult
  | IncrResult
  | LeaseGrantResult
  | LeaseKeepAliveResult
  | LeaseRevokeResult
  | ExpireLeasesResult
  | CompactResult
  | ErrorResult;

export interface StatusResult {
  readonly type: "status";
  readonly revision: number;
  /** Reads below this revision fail with COMPACTED. */
  readonly compactRevision: number;
  /** Watches (`eventsSince`) from below this revision fail with COMPACTED. */
  readonly historyStartRevision: number;
  readonly keyCount: number;
  /** Bytes of live keys and values (UTF-8), what the quota counts. */
  readonly bytes: number;
  readonly quotaBytes: number;
  /** The NOSPACE alarm: puts are refused until deletes free space. */
  readonly alarm: boolean;
  readonly leaseCount: number;
}

export interface LeaseInfo {
  readonly id: number;
  readonly ttlMs: number;
  readonly expiresAt: number;
}

export interface LeaseResult extends LeaseInfo {
  readonly type: "lease";
  /** Attached keys, ordered. */
  readonly keys: readonly string[];
}

export interface LeasesResult {
  readonly type: "leases";
  /** Ordered by id. */
  readonly leases: readonly LeaseInfo[];
}

export interface EventsResult {
  readonly type: "events";
  readonly revision: number;
  readonly events: readonly KvEvent[];
}

export type KvQueryResult = GetResult | RangeResult | StatusResult | LeaseResult | LeasesResult | EventsResult | ErrorResult;

// ---------------------------------------------------------------- key ranges

/** The range holding exactly `key`: `key + "\0"` is the next string after `key`. */
export function keyRange(key: string): KeyRange {
  return { start: key, end: `${key}\u0000` };
}

/** Every key that starts with `prefix` (every key when `prefix` is empty). */
export function prefixRange(prefix: string): KeyRange {
  const end = prefixEnd(prefix);
  return end === undefined ? { start: prefix } : { start: prefix, end };
}

/**
 * The smallest string greater than every string that starts with `prefix`:
 * the prefix with its last code unit incremented (trailing U+FFFF units
 * dropped). Undefined when no such string exists (the range is unbounded).
 */
export function prefixEnd(prefix: string): string | undefined {
  for (let index = prefix.length - 1; index >= 0; index -= 1) {
    const unit = prefix.charCodeAt(index);
    if (unit < 0xffff) return prefix.slice(0, index) + String.fromCharCode(unit + 1);
  }
  return undefined;
}

/** Is `key` in `[start, end)`? */
export function inRange(key: string, start: string, end: string | undefined): boolean {
  return key >= start && (end === undefined || key < end);
}
