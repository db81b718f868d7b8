import { InvalidOperationError, type Model, type StepResult } from "@synod/testkit";

/**
 * Jepsen's list-append object, one key of it: a list that only grows, by
 * appending an element at its end, and a read that returns all of it. The
 * append workload keeps every element unique, so a read pins the state down
 * exactly and the search stays shallow.
 */
export type ListInput = { readonly kind: "append"; readonly element: string } | { readonly kind: "read" };

/** A completed operation's response: an append says nothing but that it took effect. */
export type ListOutput = { readonly kind: "append" } | { readonly kind: "read"; readonly elements: readonly string[] };

/** The list's elements, oldest first; `[]` before the first append (the key is absent). */
export type ListState = readonly string[];

const EMPTY_LIST: ListState = [];

/** A list longer than this is shown by its ends, so a failing history stays readable in the report. */
const SHOWN_ELEMENTS_MAX = 10;

/** `[w0.1 w2.3]`, or `[w0.1 w2.3 … 37 more … w1.8 w3.9 w0.4 w2.5]` for a long list. */
export function renderList(elements: readonly string[]): string {
  if (elements.length <= SHOWN_ELEMENTS_MAX) return `[${elements.join(" ")}]`;
  const head = elements.slice(0, 2);
  const tail = elements.slice(-4);
  return `[${head.join(" ")} … ${elements.length - head.length - tail.length} more … ${tail.join(" ")}]`;
}

function sameElements(left: readonly string[], right: readonly string[]): boolean {
  if (left.length !== right.length) return false;
  for (let index = 0; index < left.length; index += 1) if (left[index] !== right[index]) return false;
  return true;
}

/** An append-only list with append and read. */
export const listAppendModel: Model<ListState, ListInput, ListOutput> = {
  init: () => EMPTY_LIST,

  step(state, input, output): StepResult<ListState> {
    if (output !== undefined && output.kind !== input.kind) throw new InvalidOperationError(`a ${input.kind} operation cannot have a ${output.kind} response`);
    switch (input.kind) {
      case "append":
        // Whether acknowledged or unknown, an append that takes effect puts its element last.
        return { ok: true, state: [...state, input.element] };
      case "read":
        // A read has no effect; with an unknown outcome any list is fine.
        return { ok: output === undefined || sameElements((output as { elements: readonly string[] }).elements, state), state };
    }
  },

  // Removing an append breaks only the reads that hold its element (elements are unique): a read
  // without it was linearized before it, and appends read nothing.
  mayObserve: (observer, writer) => writer.input.kind === "append" && observer.output?.kind === "read" && observer.output.elements.includes(writer.input.element),

  // JSON keeps the encoding canonical whatever the elements contain (spaces included).
  hash: (state) => JSON.stringify(state),

  describe(input, output) {
    const call = input.kind === "append" ? `append(${JSON.stringify(input.element)})` : "read()";
    if (output === undefined) return `${call} -> ?`;
    return output.kind === "read" ? `${call} -> ${renderList(output.elements)}` : call;
  },

  describeState: renderList,
};
