import { type AppliedCommand, type Command, type CommandBody, type Snapshot, type MultiOpResult, type Outcome, StateMachineHost } from "@synod/core";
import { KvMachine, type KvMachineOptions, type KvMultiOp, type KvOp, type KvQuery, type KvQueryResult, type KvResult, type KvTest } from "../src/index.js";

/**
 * Drives a `KvMachine` through core's real `StateMachineHost`, one command per
 * slot, so the tests exercise the same calls (and the same `ApplyContext`s) a
 * replica makes, MultiOp evaluation included.
 */
export class Harness {
  readonly machine: KvMachine;
  readonly host: StateMachineHost<KvOp, KvTest, KvResult, KvQuery, KvQueryResult>;
  private slot = 0;
  private seq = 0;
  /** The log time of the next batch. */
  time = 1_000;

  constructor(options: KvMachineOptions = {}, readonly session = "client-1") {
    this.machine = new KvMachine(options);
    this.host = new StateMachineHost(this.machine, { sessionTtlMs: Number.MAX_SAFE_INTEGER / 4, voters: ["a"] });
    this.batch([{ type: "open-session" }]);
  }

  /** Applies one slot holding `bodies` as consecutive commands of this session; returns their outcomes. */
  batch(bodies: readonly CommandBody[]): Outcome[] {
    const commands = bodies.map((body) => ({ session: this.session, seq: body.type === "open-session" ? 0 : ++this.seq, body }));
    const applied = this.host.apply({ slot: this.slot++, value: { type: "batch", time: this.time, commands } });
    return applied.map((command) => command.outcome);
  }

  /** Applies one slot holding exactly these commands (for retries with a chosen sequence number). */
  commands(commands: readonly Command[]): AppliedCommand[] {
    for (const command of commands) if (command.session === this.session) this.seq = Math.max(this.seq, command.seq);
    return this.host.apply({ slot: this.slot++, value: { type: "batch", time: this.time, commands } });
  }

  /** Installs a snapshot through the host and continues the log after it. */
  restore(snapshot: Snapshot): void {
    this.host.restore(snapshot);
    this.slot = snapshot.handle.slot + 1;
    for (const record of snapshot.handle.sessions) if (record.session === this.session) this.seq = Math.max(this.seq, record.lastSeq);
    if (!this.host.hasSession(this.session)) this.batch([{ type: "open-session" }]);
  }

  op(operation: KvOp): KvResult {
    return resultOf(this.batch([{ type: "op", op: operation }])[0]) as KvResult;
  }

  /** Applies an op without static typing, as bytes off the wire would arrive. */
  raw(operation: unknown): KvResult {
    return resultOf(this.batch([{ type: "op", op: operation }])[0]) as KvResult;
  }

  txn(body: KvMultiOp): MultiOpResult<KvResult> {
    return resultOf(this.batch([body])[0]) as MultiOpResult<KvResult>;
  }

  query(query: KvQuery): KvQueryResult {
    return this.machine.query(query);
  }

  advance(ms: number): void {
    this.time += ms;
  }
}

export function resultOf(outcome: Outcome | undefined): unknown {
  if (outcome === undefined || !outcome.ok) throw new Error(`command failed in the host: ${JSON.stringify(outcome)}`);
  return outcome.result;
}

/** Narrows a result to the expected variant, failing the test with the actual one otherwise. */
export function expectType<T extends { readonly type: string }, K extends T["type"]>(result: T, type: K): Extract<T, { type: K }> {
  if (result.type !== type) throw new Error(`expected a ${type} result, got ${JSON.stringify(result)}`);
  return result as Extract<T, { type: K }>;
}
