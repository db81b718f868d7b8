/**
 * Parsers for the two recorded history formats (see
 * /work/shared/histories/README.md): Jepsen cas-register logs and Jepsen
 * key-value maps. Both validate every line and report the first malformed one
 * as a `HistoryParseError` with its line number; blank lines are the only
 * lines skipped.
 *
 * Completion types follow Jepsen: `ok` is a success; `fail` means the
 * operation did not take effect (except a failed cas, which is a completed
 * cas whose compare failed, and `:timed-out`, which means unknown); `info`
 * means the outcome is unknown. An unknown write or cas stays open to the end
 * of the history; an unknown read is closed where it was reported, since a
 * read has no effect.
 */

import { isEdnKeyword, readEdnMap, type EdnScalar } from "./edn-map.js";
import { HistoryParseError } from "./errors.js";
import type { CasRegisterInput, CasRegisterOutput, KeyValueInput, KeyValueOutput } from "./models.js";
import { OperationRecorder } from "./operation-recorder.js";
import type { Operation } from "./types.js";

export interface ParseOptions {
  /** Label for error messages, typically the file name. */
  readonly source?: string;
}

type CompletionType = "ok" | "fail" | "info";
type EventType = "invoke" | CompletionType;
const EVENT_TYPES: readonly string[] = ["invoke", "ok", "fail", "info"];

/** Calls `handleLine` for each non-blank line, turning its `reason` throws into located `HistoryParseError`s. */
function forEachLine(text: string, options: ParseOptions, handleLine: (line: string, lineNumber: number) => void): void {
  text.split(/\r?\n/).forEach((rawLine, index) => {
    const line = rawLine.trim();
    if (line === "") return;
    try {
      handleLine(line, index + 1);
    } catch (error) {
      if (error instanceof LineRejection) throw new HistoryParseError(index + 1, error.message, rawLine, options.source);
      throw error;
    }
  });
}

/** Thrown by line handlers; `forEachLine` adds the location. */
class LineRejection extends Error {}

function reject(reason: string): never {
  throw new LineRejection(reason);
}

function parseProcess(token: string | undefined): number {
  if (token === undefined || !/^\d+$/.test(token)) reject(`process must be a non-negative integer, got ${JSON.stringify(token ?? "")}`);
  return Number(token);
}

// ---------------------------------------------------------------------------
// cas-register logs: `INFO  jepsen.util - <process> :<type> :<f> <value>`

type CasFunction = "read" | "write" | "cas";
type LogValue =
  | { readonly kind: "single"; readonly value: number | null }
  | { readonly kind: "pair"; readonly from: number | null; readonly to: number | null }
  | { readonly kind: "timed-out" };

const LOG_PREFIX = ["INFO", "jepsen.util", "-"] as const;
const LOG_SCALAR = "(nil|-?\\d+)";
const LOG_PAIR = new RegExp(`^\\[${LOG_SCALAR}\\s+${LOG_SCALAR}\\]$`);

function parseLogScalar(text: string): number | null {
  return text === "nil" ? null : Number(text);
}

function parseLogValue(text: string): LogValue {
  if (text === ":timed-out") return { kind: "timed-out" };
  if (new RegExp(`^${LOG_SCALAR}$`).test(text)) return { kind: "single", value: parseLogScalar(text) };
  const pair = LOG_PAIR.exec(text);
  if (pair !== null) return { kind: "pair", from: parseLogScalar(pair[1] as string), to: parseLogScalar(pair[2] as string) };
  return reject(`unrecognised value ${JSON.stringify(text)} (expected nil, an integer, [from to] or :timed-out)`);
}

function parseKeywordToken<Name extends string>(token: string | undefined, allowed: readonly Name[], what: string): Name {
  const name = token?.startsWith(":") ? token.slice(1) : undefined;
  if (name === undefined || !(allowed as readonly string[]).includes(name)) {
    reject(`${what} must be one of ${allowed.map((option) => `:${option}`).join(" ")}, got ${JSON.stringify(token ?? "")}`);
  }
  return name as Name;
}

function casInvocationInput(functionName: CasFunction, value: LogValue): CasRegisterInput {
  switch (functionName) {
    case "read":
      if (value.kind !== "single" || value.value !== null) reject("a read invocation must carry nil");
      return { kind: "read" };
    case "write":
      if (value.kind !== "single") reject("a write invocation must carry the value written");
      return { kind: "write", value: value.value };
    case "cas":
      if (value.kind !== "pair") reject("a cas invocation must carry [from to]");
      return { kind: "cas", from: value.from, to: value.to };
  }
}

/** Checks that a completion line repeats the invoked write or cas arguments. */
function requireSameArguments(input: CasRegisterInput, value: LogValue): void {
  const matches =
    (input.kind === "write" && value.kind === "single" && value.value === input.value) ||
    (input.kind === "cas" && value.kind === "pair" && value.from === input.from && value.to === input.to);
  if (!matches) reject(`completion value does not match the invoked ${input.kind}`);
}

function recordCasCompletion(
  recorder: OperationRecorder<CasRegisterInput, CasRegisterOutput>,
  process: number,
  type: CompletionType,
  value: LogValue,
  line: number,
): void {
  const pending = recorder.pending(process);
  if (pending === undefined) reject(`process ${process} completes an operation it never invoked`);
  const input = pending.input;
  const unknownOutcome = type === "info" || value.kind === "timed-out";
  if (unknownOutcome) {
    if (input.kind === "read") recorder.complete(process, undefined, line);
    else recorder.abandon(process);
    return;
  }
  if (input.kind === "read") {
    if (value.kind !== "single") reject("a read completion must carry nil or an integer");
    if (type === "ok") recorder.complete(process, { kind: "read", value: value.value }, line);
    else recorder.discard(process);
    return;
  }
  requireSameArguments(input, value);
  if (input.kind === "cas") recorder.complete(process, { kind: "cas", succeeded: type === "ok" }, line);
  else if (type === "ok") recorder.complete(process, { kind: "write" }, line);
  else recorder.discard(process);
}

/** Parses a Jepsen cas-register log (fields separated by tabs or runs of spaces). */
export function parseCasRegisterHistory(text: string, options: ParseOptions = {}): Operation<CasRegisterInput, CasRegisterOutput>[] {
  const recorder = new OperationRecorder<CasRegisterInput, CasRegisterOutput>();
  forEachLine(text, options, (line, lineNumber) => {
    const tokens = line.split(/\s+/);
    LOG_PREFIX.forEach((expected, index) => {
      if (tokens[index] !== expected) reject(`expected "INFO jepsen.util - <process> :<type> :<f> <value>"`);
    });
    const process = parseProcess(tokens[3]);
    const type = parseKeywordToken<EventType>(tokens[4], EVENT_TYPES as EventType[], "type");
    const functionName = parseKeywordToken<CasFunction>(tokens[5], ["read", "write", "cas"], "f");
    if (tokens.length < 7) reject("missing value");
    const value = parseLogValue(tokens.slice(6).join(" "));

    if (type === "invoke") {
      if (recorder.pending(process) !== undefined) reject(`process ${process} invokes while its previous operation is still pending`);
      recorder.invoke(process, functionName, casInvocationInput(functionName, value), lineNumber);
      return;
    }
    const pending = recorder.pending(process);
    if (pending !== undefined && pending.functionName !== functionName) {
      reject(`process ${process} completes :${functionName} but invoked :${pending.functionName} on line ${pending.line}`);
    }
    recordCasCompletion(recorder, process, type, value, lineNumber);
  });
  return recorder.finish();
}

// ---------------------------------------------------------------------------
// key-value maps: `{:process P, :type :invoke|:ok, :f :get|:put|:append, :key "K", :value nil|"V"}`

type KeyValueFunction = "get" | "put" | "append";
const KEY_VALUE_FIELDS = ["process", "type", "f", "key", "value"] as const;

function describeScalar(value: EdnScalar | undefined): string {
  if (value === undefined) return "nothing";
  if (isEdnKeyword(value)) return `:${value.keyword}`;
  return value === null ? "nil" : JSON.stringify(value);
}

function keywordField<Name extends string>(entries: ReadonlyMap<string, EdnScalar>, field: string, allowed: readonly Name[]): Name {
  const value = entries.get(field);
  if (!isEdnKeyword(value) || !(allowed as readonly string[]).includes(value.keyword)) {
    reject(`:${field} must be one of ${allowed.map((option) => `:${option}`).join(" ")}, got ${describeScalar(value)}`);
  }
  return value.keyword as Name;
}

function stringField(entries: ReadonlyMap<string, EdnScalar>, field: string, context: string): string {
  const value = entries.get(field);
  if (typeof value !== "string") reject(`:${field} of ${context} must be a string, got ${describeScalar(value)}`);
  return value;
}

function keyValueInvocationInput(functionName: KeyValueFunction, key: string, entries: ReadonlyMap<string, EdnScalar>): KeyValueInput {
  if (functionName === "get") {
    if (entries.get("value") !== null) reject(`:value of a get invocation must be nil, got ${describeScalar(entries.get("value"))}`);
    return { kind: "get", key };
  }
  return { kind: functionName, key, value: stringField(entries, "value", `a ${functionName} invocation`) };
}

function recordKeyValueCompletion(
  recorder: OperationRecorder<KeyValueInput, KeyValueOutput>,
  process: number,
  type: CompletionType,
  input: KeyValueInput,
  entries: ReadonlyMap<string, EdnScalar>,
  line: number,
): void {
  if (type === "info") {
    if (input.kind === "get") recorder.complete(process, undefined, line);
    else recorder.abandon(process);
    return;
  }
  if (type === "fail") {
    recorder.discard(process);
    return;
  }
  if (input.kind === "get") {
    recorder.complete(process, { kind: "get", value: stringField(entries, "value", "a get completion") }, line);
    return;
  }
  if (stringField(entries, "value", `a ${input.kind} completion`) !== input.value) {
    reject(`:value does not match the invoked ${input.kind}`);
  }
  recorder.complete(process, { kind: input.kind }, line);
}

/** Parses a Jepsen key-value history with one EDN map per line. */
export function parseKeyValueHistory(text: string, options: ParseOptions = {}): Operation<KeyValueInput, KeyValueOutput>[] {
  const recorder = new OperationRecorder<KeyValueInput, KeyValueOutput>();
  forEachLine(text, options, (line, lineNumber) => {
    const read = readEdnMap(line);
    if (!read.ok) reject(read.reason);
    const entries = read.entries;
    for (const field of KEY_VALUE_FIELDS) if (!entries.has(field)) reject(`missing :${field}`);
    for (const field of entries.keys()) {
      if (!(KEY_VALUE_FIELDS as readonly string[]).includes(field)) reject(`unexpected field :${field}`);
    }
    const processValue = entries.get("process");
    const process = parseProcess(typeof processValue === "number" ? String(processValue) : describeScalar(processValue));
    const type = keywordField<EventType>(entries, "type", EVENT_TYPES as EventType[]);
    const functionName = keywordField<KeyValueFunction>(entries, "f", ["get", "put", "append"]);
    const key = stringField(entries, "key", "an operation");

    if (type === "invoke") {
      if (recorder.pending(process) !== undefined) reject(`process ${process} invokes while its previous operation is still pending`);
      recorder.invoke(process, functionName, keyValueInvocationInput(functionName, key, entries), lineNumber);
      return;
    }
    const pending = recorder.pending(process);
    if (pending === undefined) reject(`process ${process} completes an operation it never invoked`);
    if (pending.functionName !== functionName) {
      reject(`process ${process} completes :${functionName} but invoked :${pending.functionName} on line ${pending.line}`);
    }
    if (pending.input.key !== key) reject(`process ${process} completes key ${JSON.stringify(key)} but invoked key ${JSON.stringify(pending.input.key)}`);
    recordKeyValueCompletion(recorder, process, type, pending.input, entries, lineNumber);
  });
  return recorder.finish();
}
