import type { Command, CommandBody, Outcome, SeededRandom } from "@synod/core";
import type { CasRegisterInput, CasRegisterOutput, KeyValueInput, KeyValueOutput, RegisterValue } from "../lincheck/index.js";
import type { KvOp, KvTest } from "./kv-machine.js";

/** What a client sends a node: a command through the log, or a linearizable read. */
export type ClientRequest = { readonly type: "command"; readonly command: Command } | { readonly type: "read"; readonly key: string };

export type ClientReply =
  | { readonly type: "outcome"; readonly outcome: Outcome; readonly slot: number }
  | { readonly type: "read"; readonly value: string }
  | { readonly type: "error"; readonly code: string; readonly leaderHint: string | undefined };

export type ClientOutput =
  /** Send `request` to `node` after `delayMs` (a backoff before a retry), timing out `timeoutMs` after sending. */
  | { readonly kind: "send"; readonly node: string; readonly attempt: number; readonly request: ClientRequest; readonly delayMs: number; readonly timeoutMs: number }
  | { readonly kind: "wait"; readonly delayMs: number };

/** One completed or unknown operation, in the shape of the checker's models. */
export type HistoryRecord =
  | { readonly model: "kv"; readonly client: number; readonly input: KeyValueInput; output: KeyValueOutput | undefined; readonly call: number; return: number }
  | { readonly model: "cas"; readonly client: number; readonly input: CasRegisterInput; output: CasRegisterOutput | undefined; readonly call: number; return: number };

interface CurrentOperation {
  readonly record: HistoryRecord | undefined;
  readonly request: ClientRequest;
}

/** The register key; every other key belongs to the KV workload. */
const REGISTER_KEY = "r";
const REQUEST_TIMEOUT_MS = 150;

/**
 * A simulated client: one session, one request at a time, retrying the same
 * `(session, seq)` after timeouts and leadership changes (exactly-once), and
 * following `NOT_LEADER` hints. It records what it saw as a history.
 */
export class SimClient {
  readonly history: HistoryRecord[] = [];
  private session: string;
  private sessionNumber = 0;
  private opened = false;
  private seq = 0;
  private target: string;
  private attempt = 0;
  private firstAttemptOfCurrent = 1;
  private current: CurrentOperation | undefined;
  private outputs: ClientOutput[] = [];
  private counter = 0;
  private readonly acknowledged: string[] = [];

  constructor(
    readonly index: number,
    private readonly nodes: readonly string[],
    private readonly keys: number,
    private readonly random: SeededRandom,
  ) {
    this.session = this.newSessionId();
    this.target = this.pick(nodes);
  }

  drain(): ClientOutput[] {
    const outputs = this.outputs;
    this.outputs = [];
    return outputs;
  }

  /** Starts the next operation when idle (and while the run still accepts new ones). */
  next(now: number, active: boolean): void {
    if (this.current !== undefined || !active) return;
    if (!this.opened) {
      this.start({ record: undefined, request: { type: "command", command: this.command({ type: "open-session" }) } });
      return;
    }
    this.start(this.randomOperation(now));
  }

  onReply(attempt: number, reply: ClientReply, now: number): void {
    const current = this.current;
    // Any attempt of the current operation may answer it (they are the same
    // request), but only the latest attempt's errors steer the retries.
    if (current === undefined || attempt < this.firstAttemptOfCurrent) return;
    if (reply.type === "error" && attempt !== this.attempt) return;
    switch (reply.type) {
      case "error":
        if (reply.code === "NOT_LEADER") this.target = reply.leaderHint ?? this.pickOther();
        this.resend(current, 2 + this.random.integer(5));
        return;
      case "read":
        this.finish(current, now, reply.value);
        return;
      case "outcome":
        if (!reply.outcome.ok) {
          if (reply.outcome.error.code === "EPOCH_CHANGED") {
            // A stale epoch's copy of the command was refused, not applied: send it again, same sequence number.
            this.resend(current, 2 + this.random.integer(5));
            return;
          }
          if (reply.outcome.error.code === "SESSION_EXPIRED") {
            // Whether it applied is unknown: leave it open and start a new session.
            this.current = undefined;
            this.opened = false;
            this.session = this.newSessionId();
            this.outputs.push({ kind: "wait", delayMs: 1 });
            return;
          }
          throw new Error(`client ${this.index} got ${reply.outcome.error.code}: ${reply.outcome.error.message}`);
        }
        if (current.request.type === "command") this.acknowledged.push(`${current.request.command.session}/${current.request.command.seq}`);
        if (current.record === undefined) this.opened = true;
        this.finish(current, now, reply.outcome.result);
        return;
    }
  }

  onTimeout(attempt: number, _now: number): void {
    const current = this.current;
    if (current === undefined || attempt !== this.attempt) return;
    this.target = this.pick(this.nodes);
    this.resend(current, 0);
  }

  /** Marks the start of the liveness phase: a fresh target, as a client would after an outage. */
  markHeal(_now: number): void {
    this.target = this.pick(this.nodes);
  }

  completedSince(time: number): number {
    return this.history.filter((record) => record.output !== undefined && record.return >= time).length;
  }

  acknowledgedCommands(): readonly string[] {
    return this.acknowledged;
  }

  private start(operation: CurrentOperation): void {
    this.current = operation;
    this.firstAttemptOfCurrent = this.attempt + 1;
    if (operation.record !== undefined) this.history.push(operation.record);
    this.send(operation);
  }

  /** Retries the same request (same session and sequence number) after `delayMs` of backoff. */
  private resend(operation: CurrentOperation, delayMs: number): void {
    this.send(operation, delayMs);
  }

  private send(operation: CurrentOperation, delayMs = 0): void {
    this.attempt += 1;
    this.outputs.push({ kind: "send", node: this.target, attempt: this.attempt, request: operation.request, delayMs, timeoutMs: REQUEST_TIMEOUT_MS });
  }

  private finish(operation: CurrentOperation, now: number, result: unknown): void {
    this.current = undefined;
    const record = operation.record;
    if (record !== undefined) {
      record.return = now;
      record.output = outputFor(record, result);
    }
    this.outputs.push({ kind: "wait", delayMs: this.random.integer(8) });
  }

  private randomOperation(now: number): CurrentOperation {
    this.counter += 1;
    const unique = `${this.index}.${this.counter}`;
    if (this.random.chance(0.25)) return this.registerOperation(now);
    const key = `k${this.random.integer(this.keys)}`;
    const roll = this.random.integer(10);
    if (roll < 4) {
      const record: HistoryRecord = { model: "kv", client: this.index, input: { kind: "get", key }, output: undefined, call: now, return: Number.POSITIVE_INFINITY };
      // Most reads take the read-index path; some go through the log.
      const request: ClientRequest = roll < 3 ? { type: "read", key } : { type: "command", command: this.op({ type: "get", key }) };
      return { record, request };
    }
    if (roll < 7) {
      const value = `p${unique};`;
      const record: HistoryRecord = { model: "kv", client: this.index, input: { kind: "put", key, value }, output: undefined, call: now, return: Number.POSITIVE_INFINITY };
      return { record, request: { type: "command", command: this.op({ type: "put", key, value }) } };
    }
    const value = `a${unique};`;
    const record: HistoryRecord = { model: "kv", client: this.index, input: { kind: "append", key, value }, output: undefined, call: now, return: Number.POSITIVE_INFINITY };
    return { record, request: { type: "command", command: this.op({ type: "append", key, value }) } };
  }

  private registerOperation(now: number): CurrentOperation {
    const roll = this.random.integer(3);
    const value = this.random.integer(5);
    if (roll === 0) {
      const record: HistoryRecord = { model: "cas", client: this.index, input: { kind: "read" }, output: undefined, call: now, return: Number.POSITIVE_INFINITY };
      return { record, request: { type: "read", key: REGISTER_KEY } };
    }
    if (roll === 1) {
      const record: HistoryRecord = { model: "cas", client: this.index, input: { kind: "write", value }, output: undefined, call: now, return: Number.POSITIVE_INFINITY };
      return { record, request: { type: "command", command: this.op({ type: "put", key: REGISTER_KEY, value: String(value) }) } };
    }
    const from: RegisterValue = this.random.chance(0.2) ? null : this.random.integer(5);
    const guard: KvTest = { type: "equals", key: REGISTER_KEY, value: from === null ? "" : String(from) };
    const top: KvOp = { type: "put", key: REGISTER_KEY, value: String(value) };
    const record: HistoryRecord = { model: "cas", client: this.index, input: { kind: "cas", from, to: value }, output: undefined, call: now, return: Number.POSITIVE_INFINITY };
    return { record, request: { type: "command", command: this.command({ type: "multi", guard: [guard], top: [top], fop: [] }) } };
  }

  private op(op: KvOp): Command {
    return this.command({ type: "op", op });
  }

  private command(body: CommandBody): Command {
    const seq = this.seq;
    this.seq += 1;
    return { session: this.session, seq, body };
  }

  private newSessionId(): string {
    this.sessionNumber += 1;
    return `c${this.index}.${this.sessionNumber}`;
  }

  /** Another node than the current target, when there is one. */
  private pickOther(): string {
    const others = this.nodes.filter((node) => node !== this.target);
    return this.pick(others.length > 0 ? others : this.nodes);
  }

  private pick<T>(items: readonly T[]): T {
    return items[this.random.integer(items.length)] as T;
  }
}

function outputFor(record: HistoryRecord, result: unknown): HistoryRecord["output"] {
  if (record.model === "kv") {
    switch (record.input.kind) {
      case "get":
        return { kind: "get", value: typeof result === "string" ? result : String(result) };
      case "put":
        return { kind: "put" };
      case "append":
        return { kind: "append" };
    }
  }
  switch (record.input.kind) {
    case "read": {
      const text = typeof result === "string" ? result : "";
      return { kind: "read", value: text === "" ? null : Number(text) };
    }
    case "write":
      return { kind: "write" };
    case "cas":
      return { kind: "cas", succeeded: (result as { succeeded: boolean }).succeeded };
  }
}
