import type { CommandBody } from "@synod/core";
import { type KvError, kvErrors } from "./errors.js";
import type { KvOp, KvQuery, KvTest, KvTxnOp } from "./ops.js";
import { inRange } from "./ops.js";
import { opSchema, parseWith, querySchema, testSchema } from "./schema.js";
import { utf8Length } from "./text.js";
import type { KvMultiOp } from "./txn.js";

/**
 * Limits the server enforces before it proposes anything, so the log never
 * carries what the store would refuse for its size. They are checked at the
 * boundary only, not inside the state machine: a limit that replicas disagree
 * on (during a rolling configuration change) must never make them apply the
 * same command differently.
 */
export interface KvLimits {
  /** Longest key, in UTF-8 bytes. */
  readonly maxKeyBytes: number;
  /** Longest value, in UTF-8 bytes. */
  readonly maxValueBytes: number;
  /** Most guards, and most operations in each branch, of one transaction (etcd's `--max-txn-ops`). */
  readonly maxTxnOps: number;
  /** Largest request, in UTF-8 bytes of its JSON (etcd's `--max-request-bytes`). */
  readonly maxRequestBytes: number;
}

export const DEFAULT_LIMITS: KvLimits = Object.freeze({
  maxKeyBytes: 8 * 1024,
  maxValueBytes: 1024 * 1024,
  maxTxnOps: 128,
  maxRequestBytes: 1.5 * 1024 * 1024,
});

export type Validated<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: KvError };

/** Checks a single operation (`{ type: "op", op }`) a client sent. */
export function validateOp(input: unknown, limits: KvLimits = DEFAULT_LIMITS): Validated<KvOp> {
  const parsed = parseWith<KvOp>(opSchema, input, true);
  if (!parsed.ok) return invalid(parsed.reason);
  const error = checkRequestSize(parsed.value, limits) ?? checkOpSizes(parsed.value, limits);
  return error === undefined ? { ok: true, value: parsed.value } : { ok: false, error };
}

/** Checks a guard. */
export function validateTest(input: unknown, limits: KvLimits = DEFAULT_LIMITS): Validated<KvTest> {
  const parsed = parseWith<KvTest>(testSchema, input, true);
  if (!parsed.ok) return invalid(parsed.reason);
  const error = checkKey(parsed.value.key, limits) ?? (parsed.value.type === "compare" && parsed.value.target === "value" ? checkValue(parsed.value.value, limits) : undefined);
  return error === undefined ? { ok: true, value: parsed.value } : { ok: false, error };
}

/** Checks a query. */
export function validateQuery(input: unknown, limits: KvLimits = DEFAULT_LIMITS): Validated<KvQuery> {
  const parsed = parseWith<KvQuery>(querySchema, input, true);
  if (!parsed.ok) return invalid(parsed.reason);
  const query = parsed.value;
  const error = query.type === "get" ? checkKey(query.key, limits) : checkRequestSize(query, limits);
  return error === undefined ? { ok: true, value: query } : { ok: false, error };
}

/**
 * Checks a transaction: every guard and operation, the number of each, the
 * total size, that branches hold only KV operations (no lease or compaction
 * operations, as in etcd), and that no branch writes a key twice (the result
 * would depend on the order of writes inside one revision).
 */
export function validateTxn(input: { readonly guard: readonly unknown[]; readonly top: readonly unknown[]; readonly fop: readonly unknown[] }, limits: KvLimits = DEFAULT_LIMITS): Validated<KvMultiOp> {
  for (const list of [input.guard, input.top, input.fop]) {
    if (list.length > limits.maxTxnOps) return { ok: false, error: kvErrors.tooManyOps(list.length, limits.maxTxnOps) };
  }
  const sizeError = checkRequestSize(input, limits);
  if (sizeError !== undefined) return { ok: false, error: sizeError };
  const guard: KvTest[] = [];
  for (const test of input.guard) {
    const checked = validateTest(test, limits);
    if (!checked.ok) return checked;
    guard.push(checked.value);
  }
  const top = validateBranch(input.top, limits);
  if (!top.ok) return top;
  const fop = validateBranch(input.fop, limits);
  if (!fop.ok) return fop;
  return { ok: true, value: { type: "multi", guard, top: top.value, fop: fop.value } };
}

/** Checks any command body a client sent: operations and transactions; session commands pass. */
export function validateCommandBody(body: CommandBody, limits: KvLimits = DEFAULT_LIMITS): Validated<CommandBody> {
  switch (body.type) {
    case "open-session":
    case "close-session":
      return { ok: true, value: body };
    case "op": {
      const checked = validateOp(body.op, limits);
      return checked.ok ? { ok: true, value: { type: "op", op: checked.value } } : checked;
    }
    case "multi":
      return validateTxn(body, limits);
  }
}

const TXN_OP_TYPES: ReadonlySet<string> = new Set<KvTxnOp["type"]>(["put", "delete", "delete-range", "get", "range", "incr"]);

function validateBranch(ops: readonly unknown[], limits: KvLimits): Validated<KvTxnOp[]> {
  const branch: KvTxnOp[] = [];
  for (const op of ops) {
    const checked = validateOp(op, limits);
    if (!checked.ok) return checked;
    if (!TXN_OP_TYPES.has(checked.value.type)) return invalid(`${checked.value.type} is not allowed in a transaction; send it on its own`);
    branch.push(checked.value as KvTxnOp);
  }
  const error = checkOverlaps(branch);
  return error === undefined ? { ok: true, value: branch } : { ok: false, error };
}

/** etcd's rule: a key is put at most once per branch, and never inside a range the branch deletes. */
function checkOverlaps(branch: readonly KvTxnOp[]): KvError | undefined {
  const written = new Set<string>();
  const deleted: { readonly start: string; readonly end: string | undefined }[] = [];
  for (const op of branch) {
    if (op.type === "delete") deleted.push({ start: op.key, end: `${op.key}\u0000` });
    if (op.type === "delete-range") deleted.push({ start: op.start, end: op.end });
  }
  for (const op of branch) {
    if (op.type !== "put" && op.type !== "incr") continue;
    if (written.has(op.key) || deleted.some((range) => inRange(op.key, range.start, range.end))) return kvErrors.duplicateKey(op.key);
    written.add(op.key);
  }
  return undefined;
}

function checkOpSizes(op: KvOp, limits: KvLimits): KvError | undefined {
  switch (op.type) {
    case "put":
      return checkKey(op.key, limits) ?? checkValue(op.value, limits);
    case "delete":
    case "get":
    case "incr":
      return checkKey(op.key, limits);
    default:
      return undefined;
  }
}

function checkKey(key: string, limits: KvLimits): KvError | undefined {
  const bytes = utf8Length(key);
  return bytes > limits.maxKeyBytes ? kvErrors.keyTooLarge(bytes, limits.maxKeyBytes) : undefined;
}

function checkValue(value: string, limits: KvLimits): KvError | undefined {
  const bytes = utf8Length(value);
  return bytes > limits.maxValueBytes ? kvErrors.valueTooLarge(bytes, limits.maxValueBytes) : undefined;
}

function checkRequestSize(request: unknown, limits: KvLimits): KvError | undefined {
  let bytes: number;
  try {
    bytes = utf8Length(JSON.stringify(request) ?? "");
  } catch {
    // Not serializable (a cycle, a BigInt): it could never have crossed the wire.
    return kvErrors.invalidRequest("the request is not JSON");
  }
  return bytes > limits.maxRequestBytes ? kvErrors.requestTooLarge(bytes, limits.maxRequestBytes) : undefined;
}

function invalid(reason: string): { readonly ok: false; readonly error: KvError } {
  return { ok: false, error: kvErrors.invalidRequest(reason) };
}
