/**
 * The Wing & Gong linearizability search with Lowe's memoization, for one
 * partition, written as a resumable state machine so that the checker can
 * interleave many partitions and stop on a budget between two slices.
 *
 * The search walks the entry list. At a call entry it tries to linearize that
 * operation next: if the model accepts it and the pair (set of linearized
 * operations, resulting state) has not been seen before, the operation is
 * lifted out of the list and the walk restarts from the head. Reaching a
 * return entry means an operation that must already have taken effect could
 * not be placed, so the search backtracks by popping the last linearized
 * operation. An empty list means every operation was linearized; backtracking
 * with nothing to pop means no linearization exists.
 *
 * The memo (Lowe's optimization) is what keeps this tractable: two search
 * paths that linearized the same set of operations and reached the same state
 * have the same future, so the second one is pruned.
 */

import { buildEntryList, lift, unlift, type Entry } from "./entry-list.js";
import { createZobristTable, mixStateId } from "./hashing.js";
import { MemoTable } from "./memo-table.js";
import type { Model, Operation } from "./types.js";

export type SearchStatus = "searching" | "linearizable" | "not linearizable";

/** The state id used for every state of a model compared with `equal` (no interning possible). */
const UNINTERNED_STATE = 0;

export class PartitionSearch<State, Input, Output> {
  status: SearchStatus = "searching";
  /** Steps taken so far over all slices. */
  stepsTaken = 0;

  private readonly inputs: Input[];
  private readonly outputs: (Output | undefined)[];
  private readonly head: Entry;
  private readonly zobrist: Int32Array;
  /** Bit i is set iff operation i is in the linearization under construction. */
  private readonly linearized: Uint32Array;
  private readonly memo: MemoTable<State>;
  /** Canonical state encodings (the model's `hash`) to small integers, so the memo compares integers. */
  private readonly stateIds = new Map<string, number>();
  private readonly primitiveStateIds = new Map<unknown, number>();
  private readonly objectStateIds = new WeakMap<object, number>();
  /** The linearization under construction: call entries and the state before each. */
  private readonly stackEntries: Entry[] = [];
  private readonly stackStates: State[] = [];
  private deepestLinearization: number[] = [];

  private current: Entry;
  private state: State;
  /** Zobrist hash of `linearized`. */
  private setHash = 0;

  constructor(
    private readonly model: Model<State, Input, Output>,
    /** The partition's operations; indices into this list identify operations throughout. */
    readonly operations: readonly Operation<Input, Output>[],
  ) {
    this.inputs = operations.map((operation) => operation.input);
    this.outputs = operations.map((operation) => operation.output);
    this.head = buildEntryList(operations);
    this.current = this.head.next ?? this.head;
    this.zobrist = createZobristTable(operations.length);
    const wordsPerSet = Math.ceil(operations.length / 32);
    this.linearized = new Uint32Array(wordsPerSet);
    this.memo = new MemoTable<State>(wordsPerSet, model.hash === undefined ? model.equal.bind(model) : undefined);
    this.state = model.init();
    if (this.head.next === null) this.status = "linearizable";
  }

  /**
   * Advances the search by at most `maxSteps` steps (one step = one attempt to
   * linearize an operation, or one backtrack) and returns the number taken.
   * Stops early once the verdict is known.
   */
  run(maxSteps: number): number {
    if (this.status !== "searching") return 0;
    const { model, inputs, outputs, head, linearized, zobrist, memo, stackEntries, stackStates } = this;
    let current = this.current;
    let state = this.state;
    let setHash = this.setHash;
    let steps = 0;

    while (steps < maxSteps) {
      if (head.next === null) {
        this.status = "linearizable";
        break;
      }
      steps++;
      if (current.match !== null) {
        const operationIndex = current.operationIndex;
        const output = outputs[operationIndex];
        const result = model.step(state, inputs[operationIndex] as Input, output);
        let accepted = result.ok;
        let nextState = result.state;
        if (!accepted && output === undefined) {
          // An unknown outcome may always mean "did not take effect".
          accepted = true;
          nextState = state;
        }
        if (accepted) {
          const nextSetHash = setHash ^ (zobrist[operationIndex] as number);
          const stateId = this.stateIdOf(nextState);
          const wordIndex = operationIndex >>> 5;
          const bit = 1 << (operationIndex & 31);
          if (memo.addIfAbsent(nextSetHash ^ mixStateId(stateId), linearized, wordIndex, bit, stateId, nextState)) {
            stackEntries.push(current);
            stackStates.push(state);
            state = nextState;
            linearized[wordIndex] = (linearized[wordIndex] as number) | bit;
            setHash = nextSetHash;
            lift(current);
            if (stackEntries.length > this.deepestLinearization.length) {
              this.deepestLinearization = stackEntries.map((entry) => entry.operationIndex);
            }
            current = head.next ?? head;
            continue;
          }
        }
        current = current.next as Entry;
      } else {
        const lastEntry = stackEntries.pop();
        if (lastEntry === undefined) {
          this.status = "not linearizable";
          break;
        }
        const operationIndex = lastEntry.operationIndex;
        state = stackStates.pop() as State;
        linearized[operationIndex >>> 5] = (linearized[operationIndex >>> 5] as number) & ~(1 << (operationIndex & 31));
        setHash ^= zobrist[operationIndex] as number;
        unlift(lastEntry);
        current = lastEntry.next as Entry;
      }
    }

    this.current = current;
    this.state = state;
    this.setHash = setHash;
    this.stepsTaken += steps;
    return steps;
  }

  /** The linearization found, in order (complete once `status` is "linearizable"). */
  linearization(): Operation<Input, Output>[] {
    return this.stackEntries.map((entry) => this.operations[entry.operationIndex] as Operation<Input, Output>);
  }

  /** The longest sequence the search ever linearized, in order. */
  longestLinearizablePrefix(): Operation<Input, Output>[] {
    return this.deepestLinearization.map((index) => this.operations[index] as Operation<Input, Output>);
  }

  /**
   * Interns a state. The model's `hash` string is the authority, but building
   * and hashing that string on every step is the search's largest cost, so
   * states already seen by identity (a primitive value, or the very same
   * immutable object) skip it. Identity implies equality, so this is exact.
   */
  private stateIdOf(state: State): number {
    const hashState = this.model.hash;
    if (hashState === undefined) return UNINTERNED_STATE;
    const isObject = (typeof state === "object" && state !== null) || typeof state === "function";
    const known = isObject ? this.objectStateIds.get(state as object) : this.primitiveStateIds.get(state);
    if (known !== undefined) return known;
    const key = hashState.call(this.model, state);
    let stateId = this.stateIds.get(key);
    if (stateId === undefined) {
      stateId = this.stateIds.size;
      this.stateIds.set(key, stateId);
    }
    if (isObject) this.objectStateIds.set(state as object, stateId);
    else this.primitiveStateIds.set(state, stateId);
    return stateId;
  }
}
