/**
 * Typed errors of the linearizability checker. Each carries a machine-readable
 * reason next to the human-readable message, so callers (the CLI, tests) can
 * react without parsing text.
 */

/** A line of a history file could not be understood. Parsers never skip a malformed line silently. */
export class HistoryParseError extends Error {
  override readonly name = "HistoryParseError";

  constructor(
    /** 1-based line number in the input. */
    readonly line: number,
    /** Why the line was rejected. */
    readonly reason: string,
    /** The offending line as it appeared in the input. */
    readonly text: string,
    /** File name or other label of the input, when known. */
    readonly source?: string,
  ) {
    super(`${source === undefined ? `line ${line}` : `${source}:${line}`}: ${reason}${text === "" ? "" : `: ${JSON.stringify(text)}`}`);
  }
}

/** A history given to the checker is inconsistent (e.g. an operation returns before it is called). */
export class HistoryValidationError extends Error {
  override readonly name = "HistoryValidationError";

  constructor(
    /** Index of the offending operation or event in the given list. */
    readonly index: number,
    readonly reason: string,
  ) {
    super(`history entry ${index}: ${reason}`);
  }
}

/** A model was handed an operation it cannot interpret (e.g. a read answered with a cas result). */
export class InvalidOperationError extends Error {
  override readonly name = "InvalidOperationError";

  constructor(readonly reason: string) {
    super(reason);
  }
}

/** A model object lacks a required member (only reachable from untyped JavaScript). */
export class ModelDefinitionError extends Error {
  override readonly name = "ModelDefinitionError";

  constructor(readonly reason: string) {
    super(reason);
  }
}

/**
 * `shrinkFailure` was given a history it cannot shrink: one that checks as
 * linearizable, one whose check did not finish within the budget, or a
 * `failure` result that does not belong to the history.
 */
export class ShrinkInputError extends Error {
  override readonly name = "ShrinkInputError";

  constructor(readonly reason: string) {
    super(reason);
  }
}
