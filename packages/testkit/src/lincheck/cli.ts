/**
 * The `synod-lincheck` command, as a function of its arguments and an
 * injected environment so that it can be tested in-process. The executable
 * wrapper is `src/bin/lincheck.ts`.
 *
 * Exit statuses follow sysexits(3) for errors: 64 bad usage, 65 unparsable
 * history, 66 unreadable file. With several files the most severe status
 * wins: 66/65, then 1 (a definite bug), then 2, then 0.
 */

import { checkOperations } from "./check.js";
import { HistoryParseError } from "./errors.js";
import { casRegisterModel, keyValueModel } from "./models.js";
import { parseCasRegisterHistory, parseKeyValueHistory, type ParseOptions } from "./parse.js";
import { formatCheckResult } from "./report.js";
import type { CheckBudget, Model, Operation, Verdict } from "./types.js";

export const EXIT_LINEARIZABLE = 0;
export const EXIT_NOT_LINEARIZABLE = 1;
export const EXIT_UNKNOWN = 2;
export const EXIT_USAGE = 64;
export const EXIT_UNPARSABLE = 65;
export const EXIT_UNREADABLE = 66;

export const USAGE = `usage: synod-lincheck --model cas-register|kv [--budget-ms N] [--budget-steps N] [--explain] FILE...

Checks each recorded history FILE for linearizability and prints
"linearizable" (exit 0), "not linearizable" (exit 1) or "unknown" (exit 2,
the budget ran out), prefixed with the file name when there are several.

  --model cas-register   Jepsen cas-register log (INFO jepsen.util - P :type :f value)
  --model kv             Jepsen key-value maps ({:process P, :type ..., :f ..., :key ..., :value ...})
  --budget-ms N          give up on a file after N milliseconds of search
  --budget-steps N       give up on a file after N search steps
  --explain              after a failed or unknown verdict, print the evidence

Errors: 64 bad usage, 65 unparsable file, 66 unreadable file.`;

export interface CliEnvironment {
  readonly writeOut: (line: string) => void;
  readonly writeError: (line: string) => void;
  /** Reads a file as UTF-8 text; throws when it cannot. */
  readonly readTextFile: (path: string) => string;
  readonly now?: () => number;
}

/** Parses and checks one history text with one model. */
interface HistoryKind {
  check(text: string, source: string, budget: CheckBudget, now: (() => number) | undefined): { verdict: Verdict; explain(): string };
}

function historyKind<State, Input, Output>(
  model: Model<State, Input, Output>,
  parse: (text: string, options: ParseOptions) => Operation<Input, Output>[],
): HistoryKind {
  return {
    check(text, source, budget, now) {
      const result = checkOperations(model, parse(text, { source }), now === undefined ? { budget } : { budget, now });
      return { verdict: result.verdict, explain: () => formatCheckResult(result, model) };
    },
  };
}

const HISTORY_KINDS: Readonly<Record<string, HistoryKind>> = {
  "cas-register": historyKind(casRegisterModel, parseCasRegisterHistory),
  kv: historyKind(keyValueModel, parseKeyValueHistory),
};

interface CliArguments {
  readonly kind: HistoryKind;
  readonly budget: CheckBudget;
  readonly explain: boolean;
  readonly files: readonly string[];
}

class UsageError extends Error {}

function parsePositiveNumber(flag: string, text: string | undefined): number {
  const value = Number(text);
  if (text === undefined || text.trim() === "" || !Number.isFinite(value) || value <= 0) {
    throw new UsageError(`${flag} needs a positive number, got ${JSON.stringify(text ?? "")}`);
  }
  return value;
}

function parseArguments(args: readonly string[]): CliArguments | "help" {
  let modelName: string | undefined;
  let milliseconds: number | undefined;
  let steps: number | undefined;
  let explain = false;
  const files: string[] = [];
  for (let index = 0; index < args.length; index++) {
    const argument = args[index] as string;
    if (argument === "--") {
      files.push(...args.slice(index + 1));
      break;
    }
    if (argument === "-h") return "help";
    if (!argument.startsWith("-") || argument === "-") {
      files.push(argument);
      continue;
    }
    if (!argument.startsWith("--")) throw new UsageError(`unknown option ${argument}`);
    const equalsAt = argument.indexOf("=");
    const flag = equalsAt === -1 ? argument : argument.slice(0, equalsAt);
    const inlineValue = equalsAt === -1 ? undefined : argument.slice(equalsAt + 1);
    const takeValue = (): string | undefined => (inlineValue !== undefined ? inlineValue : args[++index]);
    switch (flag) {
      case "--help":
        return "help";
      case "--model":
        modelName = takeValue();
        break;
      case "--budget-ms":
        milliseconds = parsePositiveNumber(flag, takeValue());
        break;
      case "--budget-steps":
        steps = parsePositiveNumber(flag, takeValue());
        break;
      case "--explain":
        explain = true;
        break;
      default:
        throw new UsageError(`unknown option ${flag}`);
    }
  }
  if (modelName === undefined) throw new UsageError("missing --model (cas-register or kv)");
  const kind = HISTORY_KINDS[modelName];
  if (kind === undefined) throw new UsageError(`unknown model ${JSON.stringify(modelName)} (expected cas-register or kv)`);
  if (files.length === 0) throw new UsageError("no history FILE given");
  return { kind, budget: { milliseconds, steps }, explain, files };
}

const VERDICT_EXIT: Readonly<Record<Verdict, number>> = {
  linearizable: EXIT_LINEARIZABLE,
  "not linearizable": EXIT_NOT_LINEARIZABLE,
  unknown: EXIT_UNKNOWN,
};

/** Higher is more severe; see the module comment. */
function severity(exitCode: number): number {
  return [EXIT_LINEARIZABLE, EXIT_UNKNOWN, EXIT_NOT_LINEARIZABLE, EXIT_UNPARSABLE, EXIT_UNREADABLE].indexOf(exitCode);
}

/** Runs the command; returns the exit status. */
export function runLincheckCli(args: readonly string[], environment: CliEnvironment): number {
  let parsed: CliArguments | "help";
  try {
    parsed = parseArguments(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    environment.writeError(`synod-lincheck: ${error.message}`);
    environment.writeError(USAGE);
    return EXIT_USAGE;
  }
  if (parsed === "help") {
    environment.writeOut(USAGE);
    return EXIT_LINEARIZABLE;
  }

  let worst = EXIT_LINEARIZABLE;
  const several = parsed.files.length > 1;
  for (const file of parsed.files) {
    const exitCode = checkFile(parsed, file, several, environment);
    if (severity(exitCode) > severity(worst)) worst = exitCode;
  }
  return worst;
}

function checkFile(parsed: CliArguments, file: string, several: boolean, environment: CliEnvironment): number {
  let text: string;
  try {
    text = environment.readTextFile(file);
  } catch (error) {
    environment.writeError(`synod-lincheck: cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`);
    return EXIT_UNREADABLE;
  }
  try {
    const { verdict, explain } = parsed.kind.check(text, file, parsed.budget, environment.now);
    environment.writeOut(several ? `${file}: ${verdict}` : verdict);
    if (parsed.explain && verdict !== "linearizable") environment.writeOut(explain());
    return VERDICT_EXIT[verdict];
  } catch (error) {
    if (!(error instanceof HistoryParseError)) throw error;
    environment.writeError(`synod-lincheck: ${error.message}`);
    return EXIT_UNPARSABLE;
  }
}
