import type { MultiOpResult } from "@synod/core";
import type { KvError } from "./errors.js";
import type { CompareOperator, CompareTest, ExistenceTest, IncrOp, KvOp, KvResult, KvTest, KvTxnOp, PutOp } from "./ops.js";

/**
 * Transactions are core MultiOps: `{ type: "multi", guard, top, fop }` as a
 * command body. Core tests every guard and applies `top` if all hold, else
 * `fop`, in one slot; the KV machine gives all the writes of that branch one
 * revision, and rolls the branch back whole if one of its operations fails
 * (then every result from the failure on is an error: see `txnOutcome`).
 */
export interface KvMultiOp {
  readonly type: "multi";
  readonly guard: readonly KvTest[];
  readonly top: readonly KvTxnOp[];
  readonly fop: readonly KvTxnOp[];
}

/** A single operation as a command body. */
export interface KvSingleOp {
  readonly type: "op";
  readonly op: KvOp;
}

export function op(operation: KvOp): KvSingleOp {
  return { type: "op", op: operation };
}

/** `if (every guard holds) then … else …`, etcd's Txn. */
export function txn(spec: { readonly if?: readonly KvTest[]; readonly then?: readonly KvTxnOp[]; readonly else?: readonly KvTxnOp[] }): KvMultiOp {
  return { type: "multi", guard: spec.if ?? [], top: spec.then ?? [], fop: spec.else ?? [] };
}

/** Guard builders, named after what they compare. */
export const compare = {
  value(key: string, operator: CompareOperator, value: string): CompareTest {
    return { type: "compare", key, target: "value", operator, value };
  },
  version(key: string, operator: CompareOperator, value: number): CompareTest {
    return { type: "compare", key, target: "version", operator, value };
  },
  createRevision(key: string, operator: CompareOperator, value: number): CompareTest {
    return { type: "compare", key, target: "createRevision", operator, value };
  },
  modRevision(key: string, operator: CompareOperator, value: number): CompareTest {
    return { type: "compare", key, target: "modRevision", operator, value };
  },
  lease(key: string, operator: CompareOperator, value: number): CompareTest {
    return { type: "compare", key, target: "lease", operator, value };
  },
  exists(key: string): ExistenceTest {
    return { type: "exists", key };
  },
  absent(key: string): ExistenceTest {
    return { type: "absent", key };
  },
} as const;

/** What a compare-and-* expects the key to be: its value, or its modRevision / version (0: absent). */
export type Expected = string | { readonly modRevision: number } | { readonly version: number };

function expectation(key: string, expected: Expected): CompareTest {
  if (typeof expected === "string") return compare.value(key, "equal", expected);
  if ("modRevision" in expected) return compare.modRevision(key, "equal", expected.modRevision);
  return compare.version(key, "equal", expected.version);
}

/** Creates `key` unless it exists; otherwise (`succeeded: false`) returns the existing key. */
export function putIfAbsent(key: string, value: string, options: { readonly lease?: number } = {}): KvMultiOp {
  return txn({ if: [compare.absent(key)], then: [putOp(key, value, options.lease)], else: [{ type: "get", key }] });
}

/** Writes `value` if the key is as expected; otherwise returns the key as it is, to retry from. */
export function compareAndSet(key: string, expected: Expected, value: string, options: { readonly lease?: number } = {}): KvMultiOp {
  return txn({ if: [expectation(key, expected)], then: [{ ...putOp(key, value, options.lease), prevKv: true }], else: [{ type: "get", key }] });
}

/** Deletes the key if it is as expected; otherwise returns the key as it is. */
export function compareAndDelete(key: string, expected: Expected): KvMultiOp {
  return txn({ if: [expectation(key, expected)], then: [{ type: "delete", key, prevKv: true }], else: [{ type: "get", key }] });
}

/** Adds `delta` to a decimal integer value, exactly once (core's sessions make a retry return the first result). */
export function increment(key: string, delta: number | string = 1, options: { readonly lease?: number } = {}): KvSingleOp {
  const incr: IncrOp = options.lease === undefined ? { type: "incr", key, delta } : { type: "incr", key, delta, lease: options.lease };
  return op(incr);
}

function putOp(key: string, value: string, lease: number | undefined): PutOp {
  return lease === undefined ? { type: "put", key, value } : { type: "put", key, value, lease };
}

export type TxnOutcome =
  /** The branch ran; `succeeded` says which (true: `top`). */
  | { readonly ok: true; readonly succeeded: boolean; readonly results: readonly KvResult[] }
  /** An operation failed: nothing of the branch was written. */
  | { readonly ok: false; readonly succeeded: boolean; readonly error: KvError };

/**
 * Reads a MultiOp's result. When an operation of the branch failed, the
 * machine rolled the branch back, so results before the failure describe
 * writes that did not happen: they are dropped here, and the failure's own
 * error (not the `TXN_ABORTED` of the operations after it) is returned.
 */
export function txnOutcome(result: MultiOpResult<KvResult>): TxnOutcome {
  let aborted: KvError | undefined;
  for (const item of result.results) {
    if (item.type !== "error") continue;
    if (item.error.code !== "TXN_ABORTED") return { ok: false, succeeded: result.succeeded, error: item.error };
    aborted ??= item.error;
  }
  if (aborted !== undefined) return { ok: false, succeeded: result.succeeded, error: aborted };
  return { ok: true, succeeded: result.succeeded, results: result.results };
}
