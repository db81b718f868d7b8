/**
 * The generic history model of the linearizability checker.
 *
 * A history is a list of operations, each with the time it was called and
 * the time it returned. The checker only compares times, so any monotonic
 * clock works (wall-clock milliseconds, simulated ticks, or plain event
 * positions in a log).
 */

/** Identifies the client (a Jepsen "process") that issued an operation. Only used for reporting. */
export type ClientId = number | string;

/**
 * One operation of a history.
 *
 * `output` is `undefined` when the outcome is unknown (the client timed out):
 * the operation may or may not have taken effect. Such an operation usually
 * stays open to the end of the history, so its `return` is `+Infinity`; an
 * unknown outcome with a finite `return` is also allowed, and means the
 * operation took effect within its interval or not at all (e.g. a read that
 * timed out, which has no effect anyway).
 *
 * `Output` itself must not include `undefined`, which is reserved for
 * "unknown".
 */
export interface Operation<Input, Output> {
  readonly clientId: ClientId;
  readonly input: Input;
  readonly output: Output | undefined;
  /** When the client issued the operation. */
  readonly call: number;
  /** When the client received the response; `+Infinity` when it never did. */
  readonly return: number;
}

/** Matches the call and return events of one operation in an event list. */
export type EventId = number | string;

/**
 * An alternative, time-less way to write a history: events in the order they
 * happened. A call without a return event has an unknown outcome and stays
 * open to the end of the history. See `operationsFromEvents`.
 */
export type HistoryEvent<Input, Output> =
  | {
      readonly kind: "call";
      readonly id: EventId;
      readonly clientId: ClientId;
      readonly input: Input;
    }
  | {
      readonly kind: "return";
      readonly id: EventId;
      /** `undefined` when the outcome is unknown. */
      readonly output: Output | undefined;
    };

/** What a model's `step` reports: whether the operation is legal in `state`, and the state after it. */
export interface StepResult<State> {
  readonly ok: boolean;
  readonly state: State;
}

/** The parts of a model that do not depend on how states are compared. */
export interface ModelBehaviour<State, Input, Output> {
  /** The state before any operation. */
  init(): State;
  /**
   * Applies `input` to `state` and tells whether `output` is a response the
   * object could have given. States must be treated as immutable: return a
   * new state rather than changing `state`, because the search backtracks.
   *
   * `output === undefined` means the outcome is unknown: any response is
   * acceptable, so `step` should answer `ok: true` and apply the input's
   * effect where it can (a cas whose compare fails leaves the state as it
   * is). The checker treats a refusal of an unknown-outcome operation as
   * "did not take effect" anyway, since that is always possible.
   */
  step(state: State, input: Input, output: Output | undefined): StepResult<State>;
  /**
   * Splits a history into independent sub-histories (P-compositionality, e.g.
   * one per key of a map). Every operation must land in exactly one part.
   * Without it the history is checked as a single partition.
   */
  partition?(operations: readonly Operation<Input, Output>[]): readonly (readonly Operation<Input, Output>[])[];
  /**
   * Whether `observer` may depend on `writer` having taken effect: it may
   * have been linearized while the state still reflected `writer`'s effect,
   * and is not sure to stay legal (or to have the same effect) without it.
   * Only `shrinkFailure` asks, to know which operations it may drop from a
   * failing history without manufacturing a violation; without this hook it
   * drops none. It only asks about an `observer` that may follow `writer`,
   * one that returned no earlier than `writer` was called.
   *
   * The contract: take a linearizable history and a set of its operations
   * such that no operation outside the set that may follow one of them may
   * observe it; the history without the set is linearizable too. So an
   * operation that never changes the state (a read, a failed cas) is
   * observed by nobody, and answering `true` when unsure is always safe; a
   * wrong `false` lets the shrinker report a violation the original history
   * does not have.
   */
  mayObserve?(observer: Operation<Input, Output>, writer: Operation<Input, Output>): boolean;
  /** Renders an operation for reports, e.g. `cas(1, 2) -> failed`. */
  describe?(input: Input, output: Output | undefined): string;
  /** Renders a state for reports. */
  describeState?(state: State): string;
}

/**
 * How the checker recognises a state it has already explored (memoization).
 * Give `hash`, a canonical encoding (equal states and only equal states give
 * the same string), which is the fast path; or `equal` when no such encoding
 * is practical.
 */
export type StateIdentity<State> =
  | { hash(state: State): string; equal?: undefined }
  | { hash?: undefined; equal(left: State, right: State): boolean };

/** A sequential specification of an object, against which histories are checked. */
export type Model<State, Input, Output> = ModelBehaviour<State, Input, Output> & StateIdentity<State>;

/** Limits on how long a check may search before giving up with `unknown`. */
export interface CheckBudget {
  /** Wall-clock limit, measured with `CheckOptions.now`. */
  readonly milliseconds?: number;
  /** Limit on search steps (one step tries to linearize or backtrack one operation), summed over partitions. */
  readonly steps?: number;
}

export interface CheckOptions {
  readonly budget?: CheckBudget;
  /** Clock for the time budget, in milliseconds; defaults to `performance.now`. Injectable for tests. */
  readonly now?: () => number;
  /**
   * Search steps given to one partition before moving to the next (round
   * robin), and between two looks at the clock. Defaults to 2048.
   */
  readonly sliceSteps?: number;
}

export type Verdict = "linearizable" | "not linearizable" | "unknown";

export interface CheckStatistics {
  /** Search steps taken, summed over partitions. */
  readonly steps: number;
  readonly elapsedMilliseconds: number;
  readonly partitions: number;
  /** Partitions whose search finished (either way). */
  readonly partitionsDecided: number;
}

/** The evidence for a "not linearizable" verdict. */
export interface FailingPartition<Input, Output> {
  /** Index in the list returned by the model's `partition` (0 without partitioning). */
  readonly index: number;
  /** All operations of the partition, ordered by call time. */
  readonly operations: readonly Operation<Input, Output>[];
  /**
   * The longest sequence of operations the search managed to linearize, in
   * linearization order; the failure lies just after it.
   */
  readonly longestLinearizablePrefix: readonly Operation<Input, Output>[];
}

export type CheckResult<Input, Output> =
  | {
      readonly verdict: "linearizable";
      /** One witness linearization per partition, in linearization order. */
      readonly linearizations: readonly (readonly Operation<Input, Output>[])[];
      readonly statistics: CheckStatistics;
    }
  | {
      readonly verdict: "not linearizable";
      readonly failingPartition: FailingPartition<Input, Output>;
      readonly statistics: CheckStatistics;
    }
  | {
      readonly verdict: "unknown";
      readonly reason: "time budget exhausted" | "step budget exhausted";
      /** Indices of the partitions whose search had not finished. */
      readonly undecidedPartitions: readonly number[];
      readonly statistics: CheckStatistics;
    };
