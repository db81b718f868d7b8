/** Conversion from the event-list form of a history to operations with times. */

import { HistoryValidationError } from "./errors.js";
import type { EventId, HistoryEvent, Operation } from "./types.js";

/**
 * Turns events listed in the order they happened into operations, using each
 * event's position as its time. A call without a return event has an unknown
 * outcome and stays open to the end (`return: Infinity`, `output: undefined`).
 */
export function operationsFromEvents<Input, Output>(events: readonly HistoryEvent<Input, Output>[]): Operation<Input, Output>[] {
  interface OpenCall {
    readonly event: Extract<HistoryEvent<Input, Output>, { kind: "call" }>;
    readonly time: number;
    returned: { readonly time: number; readonly output: Output | undefined } | undefined;
  }
  const calls = new Map<EventId, OpenCall>();
  const order: OpenCall[] = [];

  events.forEach((event, time) => {
    if (event.kind === "call") {
      if (calls.has(event.id)) throw new HistoryValidationError(time, `second call event with id ${String(event.id)}`);
      const call: OpenCall = { event, time, returned: undefined };
      calls.set(event.id, call);
      order.push(call);
      return;
    }
    if (event.kind !== "return") throw new HistoryValidationError(time, `unknown event kind ${JSON.stringify((event as { kind: unknown }).kind)}`);
    const call = calls.get(event.id);
    if (call === undefined) throw new HistoryValidationError(time, `return event with id ${String(event.id)} has no earlier call event`);
    if (call.returned !== undefined) throw new HistoryValidationError(time, `second return event with id ${String(event.id)}`);
    call.returned = { time, output: event.output };
  });

  return order.map(({ event, time, returned }) => ({
    clientId: event.clientId,
    input: event.input,
    output: returned?.output,
    call: time,
    return: returned?.time ?? Number.POSITIVE_INFINITY,
  }));
}
