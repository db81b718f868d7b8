/**
 * Shrinks a failing history to a small part that is still not linearizable,
 * so that a report can show the violation rather than thousands of
 * operations around it. Delta debugging (ddmin): drop chunks of halving size
 * down to single operations, keep a drop when the rest still checks as not
 * linearizable, and repeat until a whole round drops nothing. The first
 * chunk tried is everything after the point where the checker got stuck.
 *
 * Soundness. The shrunk history is only worth showing if it is a true
 * witness: not linearizable only when the original is not. Dropping
 * operations can manufacture a violation (drop the write a read returned, and
 * the read has no explanation), so a set of operations is dropped only
 * when no operation that stays may observe one of them, as the model's
 * `mayObserve` says (open operations get some leeway, see `droppable`). By
 * its contract (in types.ts) each such drop keeps a linearizable history
 * linearizable; so, by induction over the drops, if the shrunk history is
 * not linearizable, neither is the original. A model without `mayObserve`
 * gets no drops at all.
 *
 * Narrowing to the failing partition needs no hook: a history is
 * linearizable iff every partition is (P-compositionality).
 *
 * A re-check that ends `unknown` (its step budget, or the time budget, ran
 * out) counts as "cannot drop": only a "not linearizable" verdict is kept.
 */

import { checkOperations } from "./check.js";
import { ShrinkInputError } from "./errors.js";
import type { CheckResult, Model, Operation } from "./types.js";

const DEFAULT_MILLISECONDS = 3_000;
/** Re-checks get this many steps, or twice what the first check took if that is more. */
const MINIMUM_DEFAULT_STEPS_PER_CHECK = 100_000;

export interface ShrinkBudget {
  /**
   * Wall-clock limit for the whole shrink, first check included, measured
   * with `ShrinkOptions.now`. When it runs out the smallest witness found so
   * far is returned. Defaults to 3000.
   */
  readonly milliseconds?: number;
  /**
   * Search steps allowed to each check. By default the first check (when
   * there is one) is limited by time only, and every later check gets twice
   * the steps the first one took, and at least 100 000: a sub-history is
   * rarely harder to decide than the history it came from.
   */
  readonly stepsPerCheck?: number;
}

export interface ShrinkOptions<Input, Output> {
  readonly budget?: ShrinkBudget;
  /** Clock in milliseconds; defaults to `performance.now`. Injectable for tests. */
  readonly now?: () => number;
  /**
   * The caller's "not linearizable" result for the same `operations` (the
   * very same operation objects), which saves the first check, the most
   * expensive one on a long history.
   */
  readonly failure?: CheckResult<Input, Output>;
}

export type FailingCheckResult<Input, Output> = Extract<CheckResult<Input, Output>, { readonly verdict: "not linearizable" }>;

export interface ShrunkFailure<Input, Output> {
  /** Operations of the input (the same objects), ordered by call time, that are not linearizable together. */
  readonly operations: readonly Operation<Input, Output>[];
  /** The check of `operations` that found them not linearizable. */
  readonly result: FailingCheckResult<Input, Output>;
  /** How many operations the input had. */
  readonly originalCount: number;
  /** Checks run, the first one included. */
  readonly checks: number;
  readonly elapsedMilliseconds: number;
  /**
   * `true` when the shrink ran to its end: a last round, chunks of halving
   * size down to single operations, dropped nothing (each drop was either
   * unsound by the model's `mayObserve`, or left a linearizable or undecided
   * rest); or the model has no `mayObserve`. `false` when the time budget ran
   * out first: `operations` is still a true witness, only perhaps not the
   * smallest.
   */
  readonly finished: boolean;
}

/**
 * Returns a small sub-history of `operations` that is still not linearizable
 * under `model`, taken from its failing partition. Without `model.mayObserve`
 * that is the failing partition as it is.
 *
 * Throws `ShrinkInputError` when `operations` is linearizable, when its check
 * ends `unknown` within the budget, or when `options.failure` is not a
 * failing result of `operations`.
 */
export function shrinkFailure<State, Input, Output>(
  model: Model<State, Input, Output>,
  operations: readonly Operation<Input, Output>[],
  options: ShrinkOptions<Input, Output> = {},
): ShrunkFailure<Input, Output> {
  const checker = new BudgetedChecker(model, options);
  const initial = requireFailureOf(operations, options.failure ?? checker.check(operations));
  checker.calibrate(initial.statistics.steps);
  const shrinker = new Shrinker(model, checker, initial);
  const finished = shrinker.run();
  return {
    operations: shrinker.current,
    result: shrinker.best,
    originalCount: operations.length,
    checks: checker.checks,
    elapsedMilliseconds: checker.elapsedMilliseconds(),
    finished,
  };
}

function requireFailureOf<Input, Output>(
  operations: readonly Operation<Input, Output>[],
  result: CheckResult<Input, Output>,
): FailingCheckResult<Input, Output> {
  if (result.verdict === "linearizable") {
    throw new ShrinkInputError("shrinkFailure needs a history that is not linearizable, and this one is linearizable: there is nothing to shrink");
  }
  if (result.verdict === "unknown") {
    throw new ShrinkInputError(
      `the history's check ended unknown (${result.reason}); raise budget.stepsPerCheck or budget.milliseconds, or pass the failing result you already have as options.failure`,
    );
  }
  const given = new Set(operations);
  if (!result.failingPartition.operations.every((operation) => given.has(operation))) {
    throw new ShrinkInputError("options.failure is not a result for these operations: pass the result of checking the very same operation objects");
  }
  return result;
}

/** Runs checks within the shrink's budget: a step limit per check, and one deadline for them all. */
class BudgetedChecker<State, Input, Output> {
  checks = 0;
  private readonly now: () => number;
  private readonly startedAt: number;
  private readonly deadline: number;
  /** `undefined` until calibrated: no step limit. */
  private stepsPerCheck: number | undefined;

  constructor(
    private readonly model: Model<State, Input, Output>,
    options: ShrinkOptions<Input, Output>,
  ) {
    this.now = options.now ?? (() => performance.now());
    this.startedAt = this.now();
    this.deadline = this.startedAt + (options.budget?.milliseconds ?? DEFAULT_MILLISECONDS);
    this.stepsPerCheck = options.budget?.stepsPerCheck;
  }

  /** Sets the default step limit from the steps the first check took, unless the caller chose one. */
  calibrate(firstCheckSteps: number): void {
    this.stepsPerCheck ??= Math.max(MINIMUM_DEFAULT_STEPS_PER_CHECK, 2 * firstCheckSteps);
  }

  check(operations: readonly Operation<Input, Output>[]): CheckResult<Input, Output> {
    this.checks++;
    const milliseconds = Math.max(0, this.deadline - this.now());
    return checkOperations(this.model, operations, { budget: { steps: this.stepsPerCheck, milliseconds }, now: this.now });
  }

  outOfTime(): boolean {
    return this.now() >= this.deadline;
  }

  elapsedMilliseconds(): number {
    return this.now() - this.startedAt;
  }
}

/** One shrink: the smallest witness so far, and the search for a smaller one. */
class Shrinker<State, Input, Output> {
  /** The smallest witness so far, ordered by call time. */
  current: readonly Operation<Input, Output>[] = [];
  /** The check that found `current` not linearizable. */
  best: FailingCheckResult<Input, Output>;

  /** `current` as a set. */
  private present = new Set<Operation<Input, Output>>();
  /** `current` ordered by return time. */
  private byReturn: readonly Operation<Input, Output>[] = [];
  /** Memo of `observersOf`. */
  private readonly observers = new Map<Operation<Input, Output>, readonly Operation<Input, Output>[]>();

  constructor(
    private readonly model: Model<State, Input, Output>,
    private readonly checker: BudgetedChecker<State, Input, Output>,
    private readonly initial: FailingCheckResult<Input, Output>,
  ) {
    this.best = initial;
    this.accept(initial);
  }

  /**
   * Shrinks until a round drops nothing; returns `false` if the time budget
   * ran out first. A round tries chunks of halving size down to single
   * operations, from the end of the history (later operations tend to
   * observe earlier ones, so they go first). Rounds repeat because a drop can
   * free what an earlier attempt could not move.
   */
  run(): boolean {
    if (this.model.mayObserve === undefined) return true;
    if (this.checker.outOfTime()) return false;
    this.tryDropping(this.droppable(operationsAfterFrontier(this.initial)));
    for (;;) {
      const before = this.current.length;
      for (let size = Math.ceil(this.current.length / 2); ; size = Math.ceil(size / 2)) {
        if (!this.dropChunks(size)) return false;
        if (size === 1) break;
      }
      if (this.current.length === before) return true;
    }
  }

  /** One pass over `current` in chunks of `size`, from the end; `false` when out of time. */
  private dropChunks(size: number): boolean {
    for (let end = this.current.length; end > 0; ) {
      if (this.checker.outOfTime()) return false;
      const start = Math.max(0, end - size);
      this.dropChunk(this.current.slice(start, end));
      end = Math.min(start, this.current.length);
    }
    return true;
  }

  /**
   * Tries to drop `chunk` together with everything that may observe it
   * (the way out for a write whose value later operations used), and failing
   * that, the part of `chunk` nothing outside it observes.
   */
  private dropChunk(chunk: readonly Operation<Input, Output>[]): boolean {
    const withObservers = this.withObservers(chunk);
    if (this.tryDropping(withObservers)) return true;
    const droppable = this.droppable(chunk);
    return droppable.size < withObservers.size && this.tryDropping(droppable);
  }

  /** Drops `dropped` if the rest is still not linearizable. */
  private tryDropping(dropped: ReadonlySet<Operation<Input, Output>>): boolean {
    if (dropped.size === 0 || dropped.size >= this.current.length) return false;
    const result = this.checker.check(this.current.filter((operation) => !dropped.has(operation)));
    if (result.verdict !== "not linearizable") return false;
    this.accept(result);
    return true;
  }

  /**
   * The largest part of `chunk` that can go, as `mayObserve`'s contract
   * allows: a set none of whose operations an operation staying behind may
   * observe. Open operations (unknown outcome, never returned) may join the
   * set without going: by the contract the history without the whole set is
   * linearizable, and open operations can always be put back at the end of
   * its linearization, where whatever they did is seen by nobody. That frees
   * a write whose value only an open cas compared against.
   *
   * The set is the greatest one: start from `chunk` and every open
   * operation, and give back every operation observed from outside until
   * none is (a union of such sets is one too). A group that only observes
   * itself goes together.
   */
  private droppable(chunk: readonly Operation<Input, Output>[]): Set<Operation<Input, Output>> {
    const set = new Set(chunk);
    for (const operation of this.current) if (isOpen(operation)) set.add(operation);
    const observedFromOutside = (operation: Operation<Input, Output>) =>
      this.observersOf(operation).some((observer) => this.present.has(observer) && !set.has(observer));
    for (let changed = true; changed; ) {
      changed = false;
      for (const operation of set) {
        if (!observedFromOutside(operation)) continue;
        set.delete(operation);
        changed = true;
      }
    }
    const inChunk = new Set(chunk);
    return new Set([...set].filter((operation) => inChunk.has(operation)));
  }

  /** `chunk` and every present operation that may observe one of its operations, directly or through others: a set nobody outside observes. */
  private withObservers(chunk: readonly Operation<Input, Output>[]): Set<Operation<Input, Output>> {
    const set = new Set(chunk);
    for (const member of set) {
      for (const observer of this.observersOf(member)) if (this.present.has(observer)) set.add(observer);
    }
    return set;
  }

  /**
   * The operations that may observe `writer`, among those present when first
   * asked (a superset of those present later, since witnesses only shrink).
   * Only operations that returned no earlier than `writer` was called are
   * asked about: the others were linearized before it.
   */
  private observersOf(writer: Operation<Input, Output>): readonly Operation<Input, Output>[] {
    const known = this.observers.get(writer);
    if (known !== undefined) return known;
    const mayObserve = this.model.mayObserve as NonNullable<Model<State, Input, Output>["mayObserve"]>;
    const found: Operation<Input, Output>[] = [];
    for (let index = firstReturningFrom(this.byReturn, writer.call); index < this.byReturn.length; index++) {
      const observer = this.byReturn[index] as Operation<Input, Output>;
      if (observer !== writer && mayObserve.call(this.model, observer, writer)) found.push(observer);
    }
    this.observers.set(writer, found);
    return found;
  }

  /** Makes `result`'s failing partition the witness; it is sound on its own, by P-compositionality. */
  private accept(result: FailingCheckResult<Input, Output>): void {
    this.best = result;
    this.current = result.failingPartition.operations;
    this.present = new Set(this.current);
    this.byReturn = [...this.current].sort((left, right) => (left.return < right.return ? -1 : left.return > right.return ? 1 : 0));
  }
}

/** The index of the first operation of `byReturn` (ordered by return time) that returns at `time` or later. */
function firstReturningFrom(byReturn: readonly Operation<unknown, unknown>[], time: number): number {
  let low = 0;
  let high = byReturn.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((byReturn[middle] as Operation<unknown, unknown>).return < time) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** An operation with an unknown outcome that never returned: the checker may linearize it last. */
function isOpen(operation: Operation<unknown, unknown>): boolean {
  return operation.output === undefined && operation.return === Number.POSITIVE_INFINITY;
}

/**
 * The operations called after the deepest search got stuck, a first guess at
 * what the violation does not need. With the longest linearizable prefix
 * lifted out, the search walks the calls of the other operations in time
 * order until it meets the earliest return among them, where it must
 * backtrack; operations called after that return were never tried there.
 * Only a guess: it is dropped (soundly) and re-checked like any other chunk.
 */
function operationsAfterFrontier<Input, Output>(result: FailingCheckResult<Input, Output>): Operation<Input, Output>[] {
  const { operations, longestLinearizablePrefix } = result.failingPartition;
  const placed = new Set(longestLinearizablePrefix);
  let frontier = Number.POSITIVE_INFINITY;
  for (const operation of operations) if (!placed.has(operation)) frontier = Math.min(frontier, operation.return);
  return operations.filter((operation) => operation.call > frontier);
}
