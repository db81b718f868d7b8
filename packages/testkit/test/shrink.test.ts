/**
 * `shrinkFailure`: small witnesses on hand-built and recorded histories, and
 * soundness, i.e. a shrunk history is a true witness, never a violation
 * manufactured by dropping what a remaining operation observed.
 */

import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  casRegisterModel,
  checkOperations,
  formatShrunk,
  keyValueModel,
  parseCasRegisterHistory,
  parseKeyValueHistory,
  shrinkFailure,
  ShrinkInputError,
  type CasRegisterOutput,
  type KeyValueInput,
  type KeyValueOutput,
  type Model,
  type Operation,
  type RegisterValue,
} from "../src/lincheck/index.js";
import { NEVER, type RegisterOperation, cas, read, write } from "./register-history.js";

type MapOperation = Operation<KeyValueInput, KeyValueOutput>;

/** Every shrunk history must pass these, whatever the input. */
function expectTrueWitness<State, Input, Output>(
  model: Model<State, Input, Output>,
  input: readonly Operation<Input, Output>[],
  shrunk: readonly Operation<Input, Output>[],
): void {
  expect(shrunk.length).toBeLessThanOrEqual(input.length);
  expect(checkOperations(model, shrunk).verdict).toBe("not linearizable");
  const given = new Set(input);
  expect(shrunk.every((operation) => given.has(operation))).toBe(true);
  expect(shrunk.map((operation) => operation.call)).toEqual([...shrunk].map((operation) => operation.call).sort((left, right) => left - right));
}

/** The value a register operation may have written, if any (a cas from a value to itself writes nothing new). */
function registerValueWritten(operation: RegisterOperation): { value: RegisterValue } | undefined {
  const { input, output } = operation;
  if (input.kind === "write") return { value: input.value };
  const mayHaveSucceeded = output === undefined || (output.kind === "cas" && output.succeeded);
  if (input.kind === "cas" && input.from !== input.to && mayHaveSucceeded) return { value: input.to };
  return undefined;
}

/**
 * The soundness rule for reads: an operation that may have written the value
 * a remaining read returned (one called before the read returned) is never
 * dropped while that read remains.
 */
function expectReadSourcesKept(input: readonly RegisterOperation[], shrunk: readonly RegisterOperation[]): void {
  const kept = new Set(shrunk);
  for (const reader of shrunk) {
    if (reader.output?.kind !== "read") continue;
    const returned = reader.output.value;
    const sources = input.filter((operation) => operation.call <= reader.return && registerValueWritten(operation)?.value === returned);
    for (const source of sources) expect(kept.has(source), `a source of the read of ${String(returned)} was dropped`).toBe(true);
  }
}

/** Reads and failed cas operations by other clients around `core`, none of which explains or causes anything. */
function withNoise(core: readonly RegisterOperation[], values: readonly RegisterValue[]): RegisterOperation[] {
  const noise: RegisterOperation[] = [];
  let call = 100;
  for (const value of values) {
    noise.push(read(value, call, call + 1, 10), cas(99, 98, false, call + 2, call + 3, 11));
    call += 4;
  }
  return [...core, ...noise];
}

describe("shrinkFailure on hand-built register histories", () => {
  it("cuts a stale read amid noise down to the three operations that show it", () => {
    const stale = read(1, 20, 21, 3);
    const core = [write(1, 0, 1), read(1, 2, 3), write(2, 4, 5), read(2, 6, 7), stale];
    const history = withNoise(core, [2, 2, 2, 2, 2, 2, 2, 2]);
    expect(history).toHaveLength(21);

    const shrunk = shrinkFailure(casRegisterModel, history);

    expectTrueWitness(casRegisterModel, history, shrunk.operations);
    expect(shrunk.operations).toEqual([core[0], core[2], stale]);
    expect(shrunk.originalCount).toBe(21);
    expect(shrunk.finished).toBe(true);
    expect(shrunk.result.failingPartition.operations).toEqual(shrunk.operations);
  });

  it("cuts a lost write down to the write and the read that missed it", () => {
    const lost = write(1, 10, 11, 0);
    const missed = read(null, 12, 13, 4);
    const history = [read(null, 0, 1, 1), cas(7, 5, false, 2, 3, 2), read(null, 4, 5, 3), lost, missed, read(1, 14, 15, 1), read(1, 16, 17, 2)];

    const shrunk = shrinkFailure(casRegisterModel, history);

    expectTrueWitness(casRegisterModel, history, shrunk.operations);
    expect(shrunk.operations).toEqual([lost, missed]);
  });

  it("never drops the write a remaining read returned, which would manufacture a violation", () => {
    // Not linearizable because of the last read only (2 after 3 was written);
    // the read of 1 is fine, but alone, without write(1), it would be a
    // violation too, and a smaller one.
    const history = [write(1, 0, 1), read(1, 2, 3), write(2, 4, 5), write(3, 6, 7), read(2, 8, 9)];
    const unsoundModel: typeof casRegisterModel = { ...casRegisterModel, mayObserve: () => false };

    const sound = shrinkFailure(casRegisterModel, history);
    const unsound = shrinkFailure(unsoundModel, history);

    expectTrueWitness(casRegisterModel, history, sound.operations);
    expectReadSourcesKept(history, sound.operations);
    expect(sound.operations).toEqual([history[2], history[3], history[4]]);
    // What the hook prevents: a lone read of a value nobody wrote (in the
    // shrunk history), a violation the original history does not have.
    expect(unsound.operations).toHaveLength(1);
    expect(unsound.operations[0]?.input.kind).toBe("read");
  });

  it("keeps a successful cas whose value a remaining read returned", () => {
    const history = [write(1, 0, 1), cas(1, 2, true, 2, 3), read(2, 4, 5), write(3, 6, 7), read(2, 8, 9)];

    const shrunk = shrinkFailure(casRegisterModel, history);

    expectTrueWitness(casRegisterModel, history, shrunk.operations);
    expectReadSourcesKept(history, shrunk.operations);
    // The cas needs the write of 1 to succeed, and the late read of 2 needs the cas.
    expect(shrunk.operations).toEqual([history[0], history[1], history[3], history[4]]);
  });

  it("drops operations of unknown outcome, and the writes they compared against", () => {
    const history = [write(5, 0, 1), cas(5, 6, undefined, 2, NEVER), write(1, 3, 4), write(2, 5, 6), read(1, 7, 8)];

    const shrunk = shrinkFailure(casRegisterModel, history);

    expectTrueWitness(casRegisterModel, history, shrunk.operations);
    expect(shrunk.operations).toEqual([history[2], history[3], history[4]]);
  });
});

describe("shrinkFailure on a hand-built key-value history", () => {
  const append = (key: string, value: string, call: number, clientId: number): MapOperation => ({
    clientId,
    input: { kind: "append", key, value },
    output: { kind: "append" },
    call,
    return: call + 1,
  });
  const get = (key: string, value: string, call: number, clientId: number): MapOperation => ({
    clientId,
    input: { kind: "get", key },
    output: { kind: "get", value },
    call,
    return: call + 1,
  });

  it("keeps the failing key only, and the appends the stale get saw", () => {
    const history = [
      append("k", "a", 0, 0),
      append("other", "x", 0, 1),
      get("k", "a", 2, 1),
      append("k", "b", 4, 0),
      get("other", "x", 4, 1),
      get("k", "ab", 6, 2),
      get("k", "a", 8, 3),
    ];

    const shrunk = shrinkFailure(keyValueModel, history);

    expectTrueWitness(keyValueModel, history, shrunk.operations);
    expect(shrunk.operations).toEqual([history[0], history[3], history[6]]);
  });
});

describe("shrinkFailure inputs and budget", () => {
  const staleRead = [write(1, 0, 1), write(2, 2, 3), read(1, 4, 5)];

  it("rejects a linearizable history with ShrinkInputError", () => {
    const linearizable = [write(1, 0, 1), read(1, 2, 3)];
    expect(() => shrinkFailure(casRegisterModel, linearizable)).toThrow(ShrinkInputError);
    expect(() => shrinkFailure(casRegisterModel, linearizable)).toThrow(/this one is linearizable/);
  });

  it("rejects a history whose first check ends unknown, saying what to do", () => {
    expect(() => shrinkFailure(casRegisterModel, staleRead, { budget: { stepsPerCheck: 1 } })).toThrow(/raise budget.stepsPerCheck/);
  });

  it("rejects a failure result of another history", () => {
    const failure = checkOperations(casRegisterModel, [write(1, 0, 1), read(null, 2, 3)]);
    expect(() => shrinkFailure(casRegisterModel, staleRead, { failure })).toThrow(/not a result for these operations/);
  });

  it("starts from a given failure, and returns what it has when the time is up", () => {
    const history = withNoise(staleRead, [2, 2, 2]);
    const failure = checkOperations(casRegisterModel, history);

    const shrunk = shrinkFailure(casRegisterModel, history, { failure, budget: { milliseconds: 0 }, now: () => 0 });

    expect(shrunk.checks).toBe(0);
    expect(shrunk.finished).toBe(false);
    expect(shrunk.operations).toHaveLength(history.length);
    expect(shrunk.result).toBe(failure);
  });

  it("returns the failing partition as it is for a model without mayObserve", () => {
    const history = withNoise(staleRead, [2, 2, 2]);
    const { mayObserve: _ignored, ...withoutHook } = casRegisterModel;

    const shrunk = shrinkFailure(withoutHook as typeof casRegisterModel, history);

    expect(shrunk.operations).toEqual(history);
    expect(shrunk.checks).toBe(1);
    expect(shrunk.finished).toBe(true);
  });

  it("renders the shrunk history by call time with [call, return] and client", () => {
    const history = withNoise(staleRead, [2, 2, 2]);
    const shrunk = shrinkFailure(casRegisterModel, history, { now: () => 0 });

    const lines = formatShrunk(shrunk, casRegisterModel).split("\n");

    expect(lines[0]).toMatch(/^not linearizable: these 3 of 9 operations \(shrunk in \d+ checks, 0\.0 ms\):$/);
    expect(lines.slice(1)).toEqual([
      "  #1 [0, 1] client 0: write(1)",
      "  #2 [2, 3] client 0: write(2)",
      "  #3 [4, 5] client 1: read() -> 1",
      "longest linearizable prefix: #1 #2",
    ]);
  });
});

// ---------------------------------------------------------------------------
// Recorded histories

const HISTORIES_DIRECTORY = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../../shared/histories");

function nonLinearizableRecordedHistories(): string[] {
  const verdictsPath = path.join(HISTORIES_DIRECTORY, "verdicts.txt");
  if (!existsSync(verdictsPath)) throw new Error(`recorded histories not found: expected ${verdictsPath}`);
  return readFileSync(verdictsPath, "utf8")
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter(([file, label]) => file !== undefined && file !== "" && label === "false")
    .map(([file]) => file as string);
}

describe("shrinkFailure on recorded histories", () => {
  const files = nonLinearizableRecordedHistories();

  it("finds the non-linearizable recorded histories", () => {
    expect(files.filter((file) => file.startsWith("cas-register/")).length).toBeGreaterThan(30);
    expect(files.filter((file) => file.startsWith("kv/")).length).toBe(2);
  });

  for (const file of files.filter((name) => name.startsWith("cas-register/"))) {
    it(`shrinks ${file} to a true witness that keeps every read's sources`, () => {
      const history = parseCasRegisterHistory(readFileSync(path.join(HISTORIES_DIRECTORY, file), "utf8"), { source: file });

      const shrunk = shrinkFailure(casRegisterModel, history);

      expectTrueWitness(casRegisterModel, history, shrunk.operations);
      expectReadSourcesKept(history, shrunk.operations);
      expect(shrunk.finished).toBe(true);
      expect(shrunk.operations.length).toBeLessThan(history.length / 2);
    });
  }

  for (const file of files.filter((name) => name.startsWith("kv/"))) {
    it(`shrinks ${file} to a true witness on one key that keeps what every get saw`, () => {
      const history = parseKeyValueHistory(readFileSync(path.join(HISTORIES_DIRECTORY, file), "utf8"), { source: file });

      const shrunk = shrinkFailure(keyValueModel, history);

      expectTrueWitness(keyValueModel, history, shrunk.operations);
      expect(new Set(shrunk.operations.map((operation) => operation.input.key)).size).toBe(1);
      const kept = new Set(shrunk.operations);
      for (const getter of shrunk.operations) {
        if (getter.output?.kind !== "get") continue;
        const seen = getter.output.value;
        const sources = history.filter(
          (operation) =>
            operation.input.kind !== "get" &&
            operation.input.key === getter.input.key &&
            operation.input.value !== "" &&
            operation.call <= getter.return &&
            seen.includes(operation.input.value),
        );
        for (const source of sources) expect(kept.has(source)).toBe(true);
      }
      expect(shrunk.operations.length).toBeLessThanOrEqual(5);
    });
  }
});

// ---------------------------------------------------------------------------
// A long generated history, as a chaos campaign records them

/** Deterministic PRNG (mulberry32), so the generated history is the same on every run. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A linearizable register history: `clients` clients, each with one
 * operation at a time, every written value unique. Operations are applied in
 * the order of a point drawn inside each interval, which makes that order a
 * linearization.
 */
function generateRegisterHistory(seed: number, count: number, clients: number): RegisterOperation[] {
  const random = seededRandom(seed);
  const idleFrom = new Array<number>(clients).fill(0);
  const intervals: { call: number; point: number; returned: number; clientId: number }[] = [];
  for (let index = 0; index < count; index++) {
    const clientId = Math.floor(random() * clients);
    const call = (idleFrom[clientId] as number) + Math.floor(random() * 5);
    const point = call + Math.floor(random() * 4);
    const returned = point + Math.floor(random() * 4);
    intervals.push({ call, point, returned, clientId });
    idleFrom[clientId] = returned + 1;
  }
  intervals.sort((left, right) => left.point - right.point);
  let state: RegisterValue = null;
  const written: RegisterValue[] = [null];
  let nextValue = 1;
  const history = intervals.map(({ call, returned, clientId }): RegisterOperation => {
    const roll = random();
    if (roll < 0.5) return read(state, call, returned, clientId);
    if (roll < 0.75) {
      state = nextValue++;
      written.push(state);
      return write(state, call, returned, clientId);
    }
    const from = random() < 0.6 ? state : (written[Math.floor(random() * written.length)] as RegisterValue);
    const to = nextValue++;
    const succeeded = state === from;
    if (succeeded) {
      state = to;
      written.push(to);
    }
    return cas(from, to, succeeded, call, returned, clientId);
  });
  return history.sort((left, right) => left.call - right.call);
}

describe("shrinkFailure on a long generated history", () => {
  it("finds a planted stale read among 2000 operations", () => {
    const history = generateRegisterHistory(7, 2000, 5);
    expect(checkOperations(casRegisterModel, history).verdict).toBe("linearizable");
    // Plant the bug: a read halfway through returns a value overwritten long before.
    const victimIndex = history.findIndex((operation, index) => index >= 1000 && operation.input.kind === "read");
    const victim = history[victimIndex] as RegisterOperation;
    const earlierWrites = history.slice(0, victimIndex - 50).filter((operation) => operation.input.kind === "write");
    const overwritten = earlierWrites[earlierWrites.length - 1] as RegisterOperation;
    const planted = read(registerValueWritten(overwritten)?.value ?? null, victim.call, victim.return, victim.clientId);
    history[victimIndex] = planted;
    const failure = checkOperations(casRegisterModel, history);
    expect(failure.verdict).toBe("not linearizable");

    const shrunk = shrinkFailure(casRegisterModel, history, { failure, budget: { milliseconds: 20_000 } });

    expectTrueWitness(casRegisterModel, history, shrunk.operations);
    expectReadSourcesKept(history, shrunk.operations);
    expect(shrunk.finished).toBe(true);
    expect(shrunk.operations).toContain(planted);
    expect(shrunk.operations).toContain(overwritten);
    expect(shrunk.operations.length).toBeLessThanOrEqual(4);
  });
});

// ---------------------------------------------------------------------------
// The `mayObserve` contract, on which soundness rests

/**
 * Short random intervals of `clients` clients (one operation at a time
 * each), ordered by a linearization point drawn inside each; about one in
 * five never returns (a fresh client id each).
 */
function randomIntervals(random: () => number, count: number, clients: number) {
  const idleFrom = new Array<number>(clients).fill(0);
  const intervals: { call: number; point: number; returned: number; clientId: number; open: boolean }[] = [];
  for (let index = 0; index < count; index++) {
    const client = Math.floor(random() * clients);
    const call = (idleFrom[client] as number) + Math.floor(random() * 3);
    const point = call + Math.floor(random() * 3);
    const returned = point + Math.floor(random() * 3);
    const open = random() < 0.2;
    intervals.push({ call, point, returned, clientId: open ? 100 + index : client, open });
    idleFrom[client] = returned + 1;
  }
  return intervals.sort((left, right) => left.point - right.point);
}

/** A small linearizable register history over few values (so they repeat), with unknown outcomes and failed cas operations reporting `current`. */
function smallRegisterHistory(seed: number, count: number): RegisterOperation[] {
  const random = seededRandom(seed);
  const values: RegisterValue[] = [null, 1, 2, 3];
  const pick = () => values[Math.floor(random() * values.length)] as RegisterValue;
  let state: RegisterValue = null;
  const history = randomIntervals(random, count, 3).map(({ call, returned, clientId, open }): RegisterOperation => {
    const tookEffect = !open || random() < 0.5;
    const roll = random();
    if (roll < 0.35) return { clientId, input: { kind: "read" }, output: open ? undefined : { kind: "read", value: state }, call, return: returned };
    const end = open ? NEVER : returned;
    if (roll < 0.65) {
      const value = pick();
      if (tookEffect) state = value;
      return { clientId, input: { kind: "write", value }, output: open ? undefined : { kind: "write" }, call, return: end };
    }
    const from = random() < 0.5 ? state : pick();
    const to = pick();
    const succeeded = state === from;
    const output: CasRegisterOutput = succeeded || random() < 0.7 ? { kind: "cas", succeeded } : { kind: "cas", succeeded, current: state };
    if (succeeded && tookEffect) state = to;
    return { clientId, input: { kind: "cas", from, to }, output: open ? undefined : output, call, return: end };
  });
  return history.sort((left, right) => left.call - right.call);
}

/** A small linearizable history of one key, over strings that overlap. */
function smallKeyValueHistory(seed: number, count: number): MapOperation[] {
  const random = seededRandom(seed);
  const strings = ["", "a", "b", "ab"];
  let state = "";
  const history = randomIntervals(random, count, 3).map(({ call, returned, clientId, open }): MapOperation => {
    const tookEffect = !open || random() < 0.5;
    const roll = random();
    const value = strings[Math.floor(random() * strings.length)] as string;
    if (roll < 0.4) return { clientId, input: { kind: "get", key: "k" }, output: open ? undefined : { kind: "get", value: state }, call, return: returned };
    const end = open ? NEVER : returned;
    if (roll < 0.6) {
      if (tookEffect) state = value;
      return { clientId, input: { kind: "put", key: "k", value }, output: open ? undefined : { kind: "put" }, call, return: end };
    }
    if (tookEffect) state += value;
    return { clientId, input: { kind: "append", key: "k", value }, output: open ? undefined : { kind: "append" }, call, return: end };
  });
  return history.sort((left, right) => left.call - right.call);
}

/**
 * Checks the contract on every subset of a linearizable history: a set that
 * no operation outside it observes (among those that may follow) leaves a
 * linearizable rest, also when its open operations stay (the leeway
 * `shrinkFailure` takes). Returns the first counterexample.
 */
function contractCounterexample<State, Input, Output>(model: Model<State, Input, Output>, history: readonly Operation<Input, Output>[]): string | undefined {
  const mayObserve = model.mayObserve as NonNullable<typeof model.mayObserve>;
  const isOpen = (operation: Operation<Input, Output>) => operation.output === undefined && operation.return === NEVER;
  for (let mask = 1; mask < 1 << history.length; mask++) {
    const set = history.filter((_, index) => ((mask >> index) & 1) === 1);
    const outside = history.filter((operation) => !set.includes(operation));
    const observed = set.some((writer) => outside.some((observer) => observer.return >= writer.call && mayObserve.call(model, observer, writer)));
    if (observed) continue;
    const withOpenKept = history.filter((operation) => !set.includes(operation) || isOpen(operation));
    for (const rest of [outside, withOpenKept]) {
      if (checkOperations(model, rest).verdict !== "linearizable") return `dropping ${JSON.stringify(set)} from ${JSON.stringify(history)}`;
    }
  }
  return undefined;
}

describe("the mayObserve contract", () => {
  const HISTORIES = 200;

  it("holds for the register on small random histories, every subset", () => {
    for (let seed = 1; seed <= HISTORIES; seed++) {
      const history = smallRegisterHistory(seed, 7);
      expect(checkOperations(casRegisterModel, history).verdict).toBe("linearizable");
      expect(contractCounterexample(casRegisterModel, history)).toBeUndefined();
    }
  });

  it("holds for the key-value map on small random histories, every subset", () => {
    for (let seed = 1; seed <= HISTORIES; seed++) {
      const history = smallKeyValueHistory(seed, 7);
      expect(checkOperations(keyValueModel, history).verdict).toBe("linearizable");
      expect(contractCounterexample(keyValueModel, history)).toBeUndefined();
    }
  });
});
