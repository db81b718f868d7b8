import type { MultiOpResult } from "@synod/core";
import { ClientError, SynodClient, type SynodClientOptions } from "@synod/transport-ws";
import { type KvError, type KvErrorCode, KvOperationError, toException } from "../errors.js";
import {
  type DeleteResult,
  type Fence,
  type GetResult,
  type KeyRange,
  type KeyValue,
  type KvOp,
  type KvQuery,
  type KvQueryResult,
  type KvResult,
  type KvTest,
  type KvTxnOp,
  type LeaseInfo,
  type LeaseResult,
  type PutResult,
  type RangeResult,
  type StatusResult,
  keyRange,
  prefixRange,
} from "../ops.js";
import { type Expected, type KvMultiOp, compareAndDelete, compareAndSet, increment, putIfAbsent, txn as buildTxn, txnOutcome } from "../txn.js";
import { Namespace } from "./namespace.js";
import { KvWatch, type WatchOptions } from "./watch.js";

export interface KvClientOptions extends SynodClientOptions {
  /** Scope every key under this prefix (see `namespace`). */
  readonly namespace?: string;
}

/** Options every call takes. */
export interface KvCallOptions {
  /** Stop waiting when aborted (the call rejects with the signal's reason). A write already sent may still apply, at most once. */
  readonly signal?: AbortSignal;
}

export interface KvReadOptions extends KvCallOptions {
  /** Read as of this revision (0 or absent: the current state). */
  readonly revision?: number;
  /**
   * Read from whichever replica answers, without a quorum round: faster and
   * possibly stale, but never older than anything this client has already
   * seen (the replica must have reached that revision). Default: linearizable.
   */
  readonly serializable?: boolean;
}

export interface KvRangeOptions extends KvReadOptions {
  readonly limit?: number;
  readonly keysOnly?: boolean;
  readonly countOnly?: boolean;
}

/** Keys to range over or watch: one key, a prefix, or `[start, end)`. */
export type KeySelector = string | { readonly prefix: string } | KeyRange;

export interface TxnResult {
  /** Which branch ran: true for `then`, false for `else`. */
  readonly succeeded: boolean;
  /** The results of the branch's operations, in order. */
  readonly results: readonly KvResult[];
  /** The revision the transaction's writes share (the current revision if it wrote nothing). */
  readonly revision: number;
}

export interface CasResult {
  readonly succeeded: boolean;
  /** The key as it is after the call (`null`: absent). Only filled when the guard failed (the caller retries from it). */
  readonly current: KeyValue | null;
  readonly revision: number;
}

/** Codes of errors the KV store decides (thrown as `KvOperationError`); the rest are the transport's `ClientError`. */
const KV_CODES = new Set<KvErrorCode>([
  "QUOTA_EXCEEDED",
  "COMPACTED",
  "FUTURE_REVISION",
  "LEASE_NOT_FOUND",
  "LEASE_EXISTS",
  "NOT_A_NUMBER",
  "INVALID_REQUEST",
  "TXN_ABORTED",
  "KEY_TOO_LARGE",
  "VALUE_TOO_LARGE",
  "TOO_MANY_OPS",
  "REQUEST_TOO_LARGE",
  "DUPLICATE_KEY",
]);

/**
 * A client of a Synod KV cluster, with an etcd-like API.
 *
 * - Writes go through the log in sessions: a retry after a lost connection
 *   or a leader change is applied at most once (`increment` counts once).
 * - Reads are linearizable by default; `serializable` reads are local to
 *   whichever replica answers, yet never older than any revision this client
 *   has seen (read-your-writes across reconnects).
 * - `watch` returns an async iterator that resumes across disconnects.
 * - `namespace(prefix)` gives a view where every key is under `prefix`.
 *
 * Errors: the store's own (`KvOperationError` with `code`, e.g.
 * `VALUE_TOO_LARGE`, `LEASE_NOT_FOUND`, `COMPACTED` as `CompactedError`), or
 * the transport's `ClientError` (`UNKNOWN_OUTCOME` when no replica answered
 * before the deadline, `REJECTED` for a missing token).
 */
export class KvClient {
  private readonly client: SynodClient;
  private readonly ns: Namespace;
  private readonly owned: boolean;
  /** Shared by every namespace view of one connection: the highest revision seen. */
  private readonly seen: { revision: number };

  constructor(options: KvClientOptions);
  /** @internal a namespace view over an existing connection */
  constructor(options: KvClientOptions, shared: { client: SynodClient; seen: { revision: number } });
  constructor(options: KvClientOptions, shared?: { client: SynodClient; seen: { revision: number } }) {
    this.client = shared?.client ?? new SynodClient(options);
    this.owned = shared === undefined;
    this.seen = shared?.seen ?? { revision: 0 };
    this.ns = new Namespace(options.namespace ?? "");
  }

  /** The highest revision this client has seen in any answer. */
  get seenRevision(): number {
    return this.seen.revision;
  }

  /** A view of this client where every key is under `prefix` (nested: prefixes add up). Shares the connection; closing the view does nothing. */
  namespace(prefix: string): KvClient {
    return new KvClient({ urls: ["ws://unused"], namespace: this.ns.prefix + prefix }, { client: this.client, seen: this.seen });
  }

  // ------------------------------------------------------------ reads

  /** The key's current value and metadata, or `null`. */
  async get(key: string, options: KvReadOptions = {}): Promise<KeyValue | null> {
    return (await this.getAt(key, options)).kv;
  }

  /** The key and the store revision the read reflects (for a serializable read: how fresh the answering replica was). */
  async getAt(key: string, options: KvReadOptions = {}): Promise<GetResult> {
    const result = (await this.query({ type: "get", key: this.ns.key(key), ...revisionOf(options) }, options)) as GetResult;
    return result.kv === null ? result : { ...result, kv: this.ns.kv(result.kv) };
  }

  /** The keys selected, ordered; paginate with `limit` and the result's `next` and `revision`. */
  async range(keys: KeySelector, options: KvRangeOptions = {}): Promise<RangeResult> {
    const range = this.ns.range(selectorRange(keys));
    const query: KvQuery = {
      type: "range",
      ...range,
      ...revisionOf(options),
      ...(options.limit === undefined ? {} : { limit: options.limit }),
      ...(options.keysOnly === undefined ? {} : { keysOnly: options.keysOnly }),
      ...(options.countOnly === undefined ? {} : { countOnly: options.countOnly }),
    };
    const result = (await this.query(query, options)) as RangeResult;
    return this.ns.result(result) as RangeResult;
  }

  /** The store's counters (revision, keys, bytes, quota, alarm) as one replica sees them. */
  async status(options: KvCallOptions = {}): Promise<StatusResult> {
    return (await this.query({ type: "status" }, { ...options, serializable: true })) as StatusResult;
  }

  /** The replica's own view (role, leader, slots), from `url` or the current target. */
  replicaStatus(url?: string): Promise<unknown> {
    return this.client.status(url);
  }

  // ------------------------------------------------------------ writes

  /** Writes a key. With `fence` (a lock's name and grant token), it is refused with `FENCED` if a higher token was seen for that lock. */
  async put(key: string, value: string, options: KvCallOptions & { readonly lease?: number; readonly prevKv?: boolean; readonly fence?: Fence } = {}): Promise<PutResult> {
    const op: KvOp = {
      type: "put",
      key: this.ns.key(key),
      value,
      ...(options.lease === undefined ? {} : { lease: options.lease }),
      ...(options.prevKv === true ? { prevKv: true } : {}),
      ...(options.fence === undefined ? {} : { fence: options.fence }),
    };
    return this.ns.result(await this.write(op, options)) as PutResult;
  }

  async delete(key: string, options: KvCallOptions & { readonly prevKv?: boolean; readonly fence?: Fence } = {}): Promise<DeleteResult> {
    const op: KvOp = { type: "delete", key: this.ns.key(key), ...(options.prevKv === true ? { prevKv: true } : {}), ...(options.fence === undefined ? {} : { fence: options.fence }) };
    return this.ns.result(await this.write(op, options)) as DeleteResult;
  }

  /** Deletes every key selected, in one revision. */
  async deleteRange(keys: KeySelector, options: KvCallOptions & { readonly prevKv?: boolean } = {}): Promise<DeleteResult> {
    const op: KvOp = { type: "delete-range", ...this.ns.range(selectorRange(keys)), ...(options.prevKv === true ? { prevKv: true } : {}) };
    return this.ns.result(await this.write(op, options)) as DeleteResult;
  }

  /**
   * `if (every guard holds) then … else …`, atomically, in one revision.
   * Throws the failing operation's error if the branch that ran failed (then
   * nothing of it was written).
   */
  async txn(spec: { readonly if?: readonly KvTest[]; readonly then?: readonly KvTxnOp[]; readonly else?: readonly KvTxnOp[] } | KvMultiOp, options: KvCallOptions = {}): Promise<TxnResult> {
    const multi = "type" in spec ? spec : buildTxn(spec);
    const scoped = { guard: multi.guard.map((test) => this.ns.test(test)), top: multi.top.map((op) => this.ns.op(op)), fop: multi.fop.map((op) => this.ns.op(op)) };
    const raw = await this.call(() => this.client.proposeMulti<KvResult>(scoped, options));
    const outcome = txnOutcome(raw as MultiOpResult<KvResult>);
    if (!outcome.ok) throw toException(outcome.error);
    const results = outcome.results.map((result) => this.ns.result(result));
    const revision = Math.max(0, ...results.map((result) => ("revision" in result ? result.revision : 0)));
    this.observe(revision);
    return { succeeded: outcome.succeeded, results, revision };
  }

  /** Creates the key unless it exists. `current` is the existing key when it did. */
  async putIfAbsent(key: string, value: string, options: KvCallOptions & { readonly lease?: number } = {}): Promise<CasResult> {
    return this.cas(putIfAbsent(key, value, options), options);
  }

  /** Writes `value` if the key is as expected (a value, `{ modRevision }` or `{ version }`; version 0 is absent). */
  async compareAndSet(key: string, expected: Expected, value: string, options: KvCallOptions & { readonly lease?: number } = {}): Promise<CasResult> {
    return this.cas(compareAndSet(key, expected, value, options), options);
  }

  /** Deletes the key if it is as expected. */
  async compareAndDelete(key: string, expected: Expected, options: KvCallOptions = {}): Promise<CasResult> {
    return this.cas(compareAndDelete(key, expected), options);
  }

  /** Adds `delta` to a decimal integer value (absent counts as 0), exactly once even when retried. Returns the new value. */
  async increment(key: string, delta: number | string = 1, options: KvCallOptions & { readonly lease?: number } = {}): Promise<{ value: string; revision: number }> {
    const body = increment(this.ns.key(key), delta, options);
    const result = await this.write(body.op, options);
    if (result.type !== "incr") throw unexpected(result);
    return { value: result.value, revision: result.revision };
  }

  /** Drops history before `revision`: older reads and watches then fail with `COMPACTED`. */
  async compact(revision: number, options: KvCallOptions = {}): Promise<number> {
    const result = await this.write({ type: "compact", revision }, options);
    if (result.type !== "compact") throw unexpected(result);
    return result.compactRevision;
  }

  // ------------------------------------------------------------ leases

  /** Grants a lease that expires `ttlMs` after the grant (log time) unless kept alive. The id is random unless given. */
  async grantLease(ttlMs: number, options: KvCallOptions & { readonly id?: number } = {}): Promise<LeaseInfo> {
    const id = options.id ?? randomLeaseId();
    const result = await this.write({ type: "lease-grant", id, ttlMs }, options);
    if (result.type !== "lease-grant") throw unexpected(result);
    return { id: result.id, ttlMs: result.ttlMs, expiresAt: result.expiresAt };
  }

  async keepAlive(id: number, options: KvCallOptions = {}): Promise<LeaseInfo> {
    const result = await this.write({ type: "lease-keepalive", id }, options);
    if (result.type !== "lease-keepalive") throw unexpected(result);
    return { id: result.id, ttlMs: result.ttlMs, expiresAt: result.expiresAt };
  }

  /** Revokes the lease and deletes its keys, in one revision. */
  async revokeLease(id: number, options: KvCallOptions = {}): Promise<{ deleted: number; revision: number }> {
    const result = await this.write({ type: "lease-revoke", id }, options);
    if (result.type !== "lease-revoke") throw unexpected(result);
    return { deleted: result.deleted, revision: result.revision };
  }

  async leaseInfo(id: number, options: KvCallOptions = {}): Promise<LeaseResult> {
    return (await this.query({ type: "lease", id }, options)) as LeaseResult;
  }

  /**
   * Grants a lease and keeps it alive every `ttlMs / 3` until `revoke()` or
   * `stop()` (or the signal). If a keep-alive finds the lease gone (it
   * expired while this process was cut off), `lost` resolves: whatever the
   * lease protected is no longer held.
   */
  async lease(ttlMs: number, options: KvCallOptions = {}): Promise<KeptLease> {
    const info = await this.grantLease(ttlMs, options);
    return new KeptLease(this, info, options.signal);
  }

  // ------------------------------------------------------------ watch

  /**
   * Watches the selected keys from `fromRevision` (default: from now). An
   * async iterator of batches; each batch holds every event of whole
   * revisions, in order, exactly once, across disconnects.
   */
  watch(keys: KeySelector, options: WatchOptions = {}): KvWatch {
    return new KvWatch(this.client, this.ns.range(selectorRange(keys)), this.ns, options, (revision) => this.observe(revision));
  }

  async close(): Promise<void> {
    if (this.owned) await this.client.close();
  }

  // ------------------------------------------------------------ internals

  private async write(op: KvOp, options: KvCallOptions): Promise<KvResult> {
    const result = await this.call(() => this.client.propose<KvResult>(op, options));
    if (result.type === "error") throw toException(result.error);
    if ("revision" in result) this.observe(result.revision);
    return result;
  }

  private async cas(multi: KvMultiOp, options: KvCallOptions): Promise<CasResult> {
    const { succeeded, results, revision } = await this.txn(multi, options);
    const other = results[0];
    const current = !succeeded && other?.type === "get" ? other.kv : null;
    return { succeeded, current, revision };
  }

  private async query(query: KvQuery, options: KvReadOptions): Promise<KvQueryResult> {
    const result = await this.call(async () => {
      if (options.serializable !== true) return this.client.read<KvQueryResult>(query, options);
      const local = await this.client.readLocal<KvQueryResult>({ ...query, minRevision: this.seen.revision }, options);
      return local.value;
    });
    if (result.type === "error") throw toException(result.error);
    if ("revision" in result) this.observe(result.revision);
    return result;
  }

  /** Runs a call, turning the store's refusals at the boundary into `KvOperationError`. */
  private async call<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (error instanceof ClientError && KV_CODES.has(error.code as KvErrorCode)) {
        throw toException({ ...error.details, code: error.code, message: error.message } as unknown as KvError);
      }
      throw error;
    }
  }

  private observe(revision: number): void {
    if (revision > this.seen.revision) this.seen.revision = revision;
  }
}

/** A lease this client keeps alive in the background. */
export class KeptLease {
  readonly id: number;
  readonly ttlMs: number;
  /** Resolves if the lease was found gone (expired or revoked elsewhere). */
  readonly lost: Promise<void>;
  private markLost!: () => void;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;

  constructor(
    private readonly client: KvClient,
    info: LeaseInfo,
    signal: AbortSignal | undefined,
  ) {
    this.id = info.id;
    this.ttlMs = info.ttlMs;
    this.lost = new Promise((resolve) => {
      this.markLost = resolve;
    });
    signal?.addEventListener("abort", () => this.stop(), { once: true });
    this.schedule();
  }

  /** Stops keeping it alive (it then expires after its TTL). */
  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
  }

  /** Stops and revokes it: its keys are deleted now. */
  async revoke(): Promise<void> {
    this.stop();
    await this.client.revokeLease(this.id).catch((error: unknown) => {
      if (!(error instanceof KvOperationError && error.code === "LEASE_NOT_FOUND")) throw error;
    });
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.renew(), Math.max(10, Math.floor(this.ttlMs / 3)));
    this.timer.unref?.();
  }

  private async renew(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.client.keepAlive(this.id);
    } catch (error) {
      if (error instanceof KvOperationError && error.code === "LEASE_NOT_FOUND") {
        this.stopped = true;
        this.markLost();
        return;
      }
      // A transient failure: the next renewal tries again.
    }
    this.schedule();
  }
}

function selectorRange(keys: KeySelector): KeyRange {
  if (typeof keys === "string") return keyRange(keys);
  if ("prefix" in keys) return prefixRange(keys.prefix);
  return keys;
}

function revisionOf(options: KvReadOptions): { revision?: number } {
  return options.revision === undefined || options.revision === 0 ? {} : { revision: options.revision };
}

function unexpected(result: KvResult): Error {
  return new KvOperationError({ code: "INVALID_REQUEST", message: `unexpected result of type ${result.type}`, reason: "unexpected result" });
}

function randomLeaseId(): number {
  const [high, low] = crypto.getRandomValues(new Uint32Array(2)) as unknown as [number, number];
  // 48 random bits, never 0.
  return (high & 0xffff) * 0x1_0000_0000 + low + 1;
}
