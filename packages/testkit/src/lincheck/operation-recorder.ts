/**
 * Pairs the invoke and completion lines of a Jepsen-style log into
 * operations. Times are line numbers: the checker only needs their order.
 */

import type { Operation } from "./types.js";

/** An invocation still waiting for its completion line. */
export interface PendingInvocation<Input> {
  readonly input: Input;
  /** The invoked function (`read`, `cas`, ...), which the completion must repeat. */
  readonly functionName: string;
  readonly line: number;
}

interface Recorded<Input, Output> {
  readonly clientId: number;
  readonly input: Input;
  readonly call: number;
  output: Output | undefined;
  return: number;
  discarded: boolean;
}

export class OperationRecorder<Input, Output> {
  private readonly records: Recorded<Input, Output>[] = [];
  private readonly pendingByProcess = new Map<number, { readonly invocation: PendingInvocation<Input>; readonly record: Recorded<Input, Output> }>();

  /** The invocation `process` is waiting on, if any. */
  pending(process: number): PendingInvocation<Input> | undefined {
    return this.pendingByProcess.get(process)?.invocation;
  }

  invoke(process: number, functionName: string, input: Input, line: number): void {
    const record: Recorded<Input, Output> = {
      clientId: process,
      input,
      call: line,
      output: undefined,
      return: Number.POSITIVE_INFINITY,
      discarded: false,
    };
    this.records.push(record);
    this.pendingByProcess.set(process, { invocation: { input, functionName, line }, record });
  }

  /** The operation returned at `line`; `output` undefined when its outcome is unknown but it can have had no effect after `line`. */
  complete(process: number, output: Output | undefined, line: number): void {
    const record = this.take(process);
    record.output = output;
    record.return = line;
  }

  /** The outcome is unknown and the operation may still take effect later: it stays open to the end of the history. */
  abandon(process: number): void {
    this.take(process);
  }

  /** The operation definitely did not take effect: it is left out of the history. */
  discard(process: number): void {
    this.take(process).discarded = true;
  }

  /** The operations, in call order. Invocations never completed stay open with unknown outcomes. */
  finish(): Operation<Input, Output>[] {
    return this.records
      .filter((record) => !record.discarded)
      .map(({ clientId, input, output, call, return: returned }) => ({ clientId, input, output, call, return: returned }));
  }

  private take(process: number): Recorded<Input, Output> {
    const entry = this.pendingByProcess.get(process);
    if (entry === undefined) throw new Error(`internal: process ${process} has no pending invocation`);
    this.pendingByProcess.delete(process);
    return entry.record;
  }
}
