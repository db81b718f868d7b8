/** Ready-made models: a compare-and-set register and a key-value map. */

import { InvalidOperationError } from "./errors.js";
import type { Model, Operation, StepResult } from "./types.js";

// ---------------------------------------------------------------------------
// CAS register

/** A register value; `null` is Jepsen's `nil`, the initial value. */
export type RegisterValue = number | string | null;

export type CasRegisterInput =
  | { readonly kind: "read" }
  | { readonly kind: "write"; readonly value: RegisterValue }
  | { readonly kind: "cas"; readonly from: RegisterValue; readonly to: RegisterValue };

/**
 * A completed operation's response. A cas that did not succeed (`succeeded:
 * false`) means the compare failed: the register held something other than
 * `from` at the linearization point. A store that reads the value in the same
 * step as the compare (etcd's `else: [get]`) reports it as `current`, which
 * is then checked as a read.
 */
export type CasRegisterOutput =
  | { readonly kind: "read"; readonly value: RegisterValue }
  | { readonly kind: "write" }
  | { readonly kind: "cas"; readonly succeeded: boolean; readonly current?: RegisterValue };

/** Canonical, type-tagged encoding, so that the number 1 and the string "1" stay distinct. */
function encodeRegisterValue(value: RegisterValue): string {
  if (value === null) return "nil";
  return typeof value === "number" ? `n${value}` : `s${value}`;
}

function renderRegisterValue(value: RegisterValue): string {
  if (value === null) return "nil";
  return typeof value === "number" ? String(value) : JSON.stringify(value);
}

/** The value `operation` may leave in the register, or `undefined` when it never changes the state. */
function valueWritten(operation: Operation<CasRegisterInput, CasRegisterOutput>): { readonly value: RegisterValue } | undefined {
  const { input, output } = operation;
  switch (input.kind) {
    case "read":
      return undefined;
    case "write":
      return { value: input.value };
    case "cas": {
      // A cas from a value to itself changes nothing, and a failed one neither.
      if (input.from === input.to) return undefined;
      const mayHaveSucceeded = output === undefined || (output as { succeeded: boolean }).succeeded;
      return mayHaveSucceeded ? { value: input.to } : undefined;
    }
  }
}

/**
 * `mayObserve` of the register. Say `writer` moved the register from `s` to
 * `v` in some linearization; drop it, and the operations linearized after it
 * while the register held `v` see `s` instead, until the next write puts
 * things back. Among those:
 * - a read returned `v`, a successful cas compared against `v`, a failed cas
 *   that reports its `current` value reported `v`: all observe it;
 * - a failed cas without `current` failed against `v` but might succeed
 *   against `s`: observes, unless its `from` is `v` (then it could not have
 *   run while the register held `v`);
 * - an unknown-outcome cas from `v` may have taken effect there: observes.
 *   One from another value had no effect there; against `s` it might, which
 *   is harmless if it never returned (it can be linearized last instead) but
 *   not if it returned: that one observes;
 * - writes and unknown-outcome reads accept any state.
 * Operations that returned before `writer` was called were linearized before
 * it, and saw none of this.
 */
function registerMayObserve(
  observer: Operation<CasRegisterInput, CasRegisterOutput>,
  writer: Operation<CasRegisterInput, CasRegisterOutput>,
): boolean {
  const written = valueWritten(writer);
  if (written === undefined || observer === writer || observer.return < writer.call) return false;
  const { input, output } = observer;
  switch (input.kind) {
    case "read":
      return output !== undefined && (output as { value: RegisterValue }).value === written.value;
    case "write":
      return false;
    case "cas": {
      if (output === undefined) return input.from === written.value || observer.return !== Number.POSITIVE_INFINITY;
      const { succeeded, current } = output as { succeeded: boolean; current?: RegisterValue };
      if (succeeded) return input.from === written.value;
      return current === undefined ? input.from !== written.value : current === written.value;
    }
  }
}

function outputMismatch(input: { readonly kind: string }, output: { readonly kind: string }): never {
  throw new InvalidOperationError(`a ${input.kind} operation cannot have a ${output.kind} response`);
}

/** A single register, initially `null`, with read, write and compare-and-set. */
export const casRegisterModel: Model<RegisterValue, CasRegisterInput, CasRegisterOutput> = {
  init: () => null,

  step(state, input, output): StepResult<RegisterValue> {
    if (output !== undefined && output.kind !== input.kind) outputMismatch(input, output);
    switch (input.kind) {
      case "read":
        // A read has no effect; with an unknown outcome any value is fine.
        return { ok: output === undefined || (output as { value: RegisterValue }).value === state, state };
      case "write":
        return { ok: true, state: input.value };
      case "cas": {
        const compareHolds = state === input.from;
        if (output === undefined) return { ok: true, state: compareHolds ? input.to : state };
        const { succeeded, current } = output as { succeeded: boolean; current?: RegisterValue };
        const sawState = succeeded || current === undefined || current === state;
        return { ok: succeeded === compareHolds && sawState, state: compareHolds ? input.to : state };
      }
    }
  },

  hash: encodeRegisterValue,

  mayObserve: registerMayObserve,

  describe(input, output) {
    const call =
      input.kind === "read"
        ? "read()"
        : input.kind === "write"
          ? `write(${renderRegisterValue(input.value)})`
          : `cas(${renderRegisterValue(input.from)}, ${renderRegisterValue(input.to)})`;
    if (output === undefined) return `${call} -> ?`;
    if (output.kind === "read") return `${call} -> ${renderRegisterValue(output.value)}`;
    if (output.kind === "cas") return `${call} -> ${output.succeeded ? "ok" : output.current === undefined ? "failed" : `failed, current ${renderRegisterValue(output.current)}`}`;
    return call;
  },

  describeState: renderRegisterValue,
};

// ---------------------------------------------------------------------------
// Key-value map

export type KeyValueInput =
  | { readonly kind: "get"; readonly key: string }
  | { readonly kind: "put"; readonly key: string; readonly value: string }
  | { readonly kind: "append"; readonly key: string; readonly value: string };

export type KeyValueOutput =
  | { readonly kind: "get"; readonly value: string }
  | { readonly kind: "put" }
  | { readonly kind: "append" };

/**
 * The map's contents; keys never written are absent and read as `""`. Once
 * partitioned by key, each partition's map holds at most one key, but the
 * model stays correct on an unpartitioned history too.
 */
export type KeyValueState = ReadonlyMap<string, string>;

const EMPTY_MAP: KeyValueState = new Map();

function withValue(state: KeyValueState, key: string, value: string): KeyValueState {
  const next = new Map(state);
  next.set(key, value);
  return next;
}

/** Length-prefixed entries in key order: canonical and unambiguous whatever the strings contain. */
function encodeKeyValueState(state: KeyValueState): string {
  const keys = [...state.keys()];
  if (keys.length > 1) keys.sort();
  let encoded = "";
  for (const key of keys) {
    const value = state.get(key) as string;
    encoded += `${key.length}:${key}${value.length}:${value}`;
  }
  return encoded;
}

/** Groups operations by key, in order of each key's first appearance. */
function partitionByKey(
  operations: readonly Operation<KeyValueInput, KeyValueOutput>[],
): Operation<KeyValueInput, KeyValueOutput>[][] {
  const byKey = new Map<string, Operation<KeyValueInput, KeyValueOutput>[]>();
  for (const operation of operations) {
    const group = byKey.get(operation.input.key);
    if (group === undefined) byKey.set(operation.input.key, [operation]);
    else group.push(operation);
  }
  return [...byKey.values()];
}

/**
 * `mayObserve` of the map. Dropping a put or append of `x` changes the key's
 * value only until the next put, and every value in between starts with `x`
 * (after a put) or contains it (after an append); puts and appends accept
 * any state, so only a get that returned such a value can notice.
 * Operations that returned before `writer` was called saw none of it.
 */
function keyValueMayObserve(
  observer: Operation<KeyValueInput, KeyValueOutput>,
  writer: Operation<KeyValueInput, KeyValueOutput>,
): boolean {
  const written = writer.input;
  if (written.kind === "get" || (written.kind === "append" && written.value === "")) return false;
  if (observer === writer || observer.return < writer.call || observer.input.key !== written.key) return false;
  if (observer.input.kind !== "get" || observer.output === undefined) return false;
  const value = (observer.output as { value: string }).value;
  return written.kind === "put" ? value.startsWith(written.value) : value.includes(written.value);
}

/** A map of strings with get, put and append; keys are independent, so histories are partitioned by key. */
export const keyValueModel: Model<KeyValueState, KeyValueInput, KeyValueOutput> = {
  init: () => EMPTY_MAP,

  step(state, input, output): StepResult<KeyValueState> {
    if (output !== undefined && output.kind !== input.kind) outputMismatch(input, output);
    switch (input.kind) {
      case "get": {
        const current = state.get(input.key) ?? "";
        return { ok: output === undefined || (output as { value: string }).value === current, state };
      }
      case "put":
        return { ok: true, state: withValue(state, input.key, input.value) };
      case "append":
        return { ok: true, state: withValue(state, input.key, (state.get(input.key) ?? "") + input.value) };
    }
  },

  hash: encodeKeyValueState,

  partition: partitionByKey,

  mayObserve: keyValueMayObserve,

  describe(input, output) {
    const call =
      input.kind === "get"
        ? `get(${JSON.stringify(input.key)})`
        : `${input.kind}(${JSON.stringify(input.key)}, ${JSON.stringify(input.value)})`;
    if (output === undefined) return `${call} -> ?`;
    return output.kind === "get" ? `${call} -> ${JSON.stringify(output.value)}` : call;
  },

  describeState(state) {
    return `{${[...state.entries()].map(([key, value]) => `${JSON.stringify(key)}: ${JSON.stringify(value)}`).join(", ")}}`;
  },
};
