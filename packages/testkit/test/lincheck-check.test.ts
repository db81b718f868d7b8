/** Unit tests of the search, the budget, partitioning and the models, on small hand-made histories. */

import { describe, expect, it } from "vitest";
import {
  casRegisterModel,
  checkOperations,
  HistoryValidationError,
  InvalidOperationError,
  keyValueModel,
  operationsFromEvents,
  type CasRegisterInput,
  type CasRegisterOutput,
  type KeyValueInput,
  type KeyValueOutput,
  type Model,
  type Operation,
  type RegisterValue,
} from "../src/lincheck/index.js";
import { NEVER, type RegisterOperation, cas, read, write } from "./register-history.js";

type MapOperation = Operation<KeyValueInput, KeyValueOutput>;

const verdictOf = (operations: readonly RegisterOperation[]) => checkOperations(casRegisterModel, operations).verdict;

describe("cas register", () => {
  it("accepts a sequential history", () => {
    expect(verdictOf([read(null, 0, 1), write(1, 2, 3), read(1, 4, 5), cas(1, 2, true, 6, 7), read(2, 8, 9)])).toBe("linearizable");
  });

  it("accepts concurrent reads seeing the old and the new value of an overlapping write", () => {
    expect(verdictOf([write(1, 0, 10), read(null, 1, 2), read(1, 3, 4)])).toBe("linearizable");
  });

  it("rejects reads that see the new value and then the old one", () => {
    expect(verdictOf([write(1, 0, 10), read(1, 1, 2), read(null, 3, 4)])).toBe("not linearizable");
  });

  it("rejects a stale read and reports the failing partition", () => {
    const history = [write(1, 0, 1), read(null, 2, 3)];
    const result = checkOperations(casRegisterModel, history);
    expect(result.verdict).toBe("not linearizable");
    if (result.verdict !== "not linearizable") return;
    expect(result.failingPartition.index).toBe(0);
    expect(result.failingPartition.operations).toEqual(history);
    expect(result.failingPartition.longestLinearizablePrefix).toEqual([history[0]]);
  });

  it("returns a witness linearization", () => {
    const history = [write(1, 0, 10), read(1, 1, 2), write(2, 3, 4)];
    const result = checkOperations(casRegisterModel, history);
    expect(result.verdict).toBe("linearizable");
    if (result.verdict !== "linearizable") return;
    expect(result.linearizations).toEqual([[history[0], history[1], history[2]]]);
  });

  it("lets an unknown-outcome write take effect", () => {
    expect(verdictOf([write(1, 0, NEVER), read(1, 5, 6)])).toBe("linearizable");
  });

  it("lets an unknown-outcome write not take effect", () => {
    expect(verdictOf([write(1, 0, NEVER), read(null, 5, 6), read(null, 7, 8)])).toBe("linearizable");
  });

  it("does not let an unknown-outcome write be undone", () => {
    expect(verdictOf([write(1, 0, NEVER), read(1, 5, 6), read(null, 7, 8)])).toBe("not linearizable");
  });

  it("accepts an unknown-outcome read with a finite return, whatever it would have read", () => {
    const timedOutRead: RegisterOperation = { clientId: 3, input: { kind: "read" }, output: undefined, call: 2, return: 3 };
    expect(verdictOf([write(1, 0, 1), timedOutRead, read(1, 4, 5)])).toBe("linearizable");
  });

  it("requires a successful cas to find `from`", () => {
    expect(verdictOf([write(1, 0, 1), cas(1, 2, true, 2, 3), read(2, 4, 5)])).toBe("linearizable");
    expect(verdictOf([cas(1, 2, true, 0, 1)])).toBe("not linearizable");
    expect(verdictOf([write(3, 0, 1), cas(1, 2, true, 2, 3)])).toBe("not linearizable");
  });

  it("treats a failed cas as a compare that did not hold, with no effect", () => {
    expect(verdictOf([write(3, 0, 1), cas(1, 2, false, 2, 3), read(3, 4, 5)])).toBe("linearizable");
    expect(verdictOf([write(1, 0, 1), cas(1, 2, false, 2, 3)])).toBe("not linearizable");
    expect(verdictOf([cas(1, 2, false, 0, 1), read(null, 2, 3)])).toBe("linearizable");
  });

  it("checks the value a failed cas reports it found, as a read at the same point", () => {
    const failedSeeing = (current: RegisterValue, call: number, returned: number): RegisterOperation => ({
      clientId: 2,
      input: { kind: "cas", from: 1, to: 2 },
      output: { kind: "cas", succeeded: false, current },
      call,
      return: returned,
    });
    expect(verdictOf([write(3, 0, 1), failedSeeing(3, 2, 3)])).toBe("linearizable");
    expect(verdictOf([write(3, 0, 1), failedSeeing(4, 2, 3)])).toBe("not linearizable");
    // Concurrent with a write of 4: either value may have been the one found.
    expect(verdictOf([write(3, 0, 1), write(4, 2, 5), failedSeeing(4, 3, 4)])).toBe("linearizable");
  });

  it("applies an unknown-outcome cas only when its compare holds", () => {
    expect(verdictOf([write(1, 0, 1), cas(1, 2, undefined, 2, NEVER), read(2, 4, 5)])).toBe("linearizable");
    expect(verdictOf([write(1, 0, 1), cas(1, 2, undefined, 2, NEVER), read(1, 4, 5)])).toBe("linearizable");
    expect(verdictOf([write(5, 0, 1), cas(1, 2, undefined, 2, NEVER), read(2, 4, 5)])).toBe("not linearizable");
  });

  it("treats operations touching at the same instant as concurrent", () => {
    expect(verdictOf([read(1, 0, 5), write(1, 5, 6)])).toBe("linearizable");
  });

  it("accepts an empty history", () => {
    expect(verdictOf([])).toBe("linearizable");
  });

  it("rejects an operation whose output does not fit its input", () => {
    const mismatched: RegisterOperation = { clientId: 0, input: { kind: "read" }, output: { kind: "cas", succeeded: true }, call: 0, return: 1 };
    expect(() => verdictOf([mismatched])).toThrow(InvalidOperationError);
  });
});

describe("history validation", () => {
  it("rejects an operation returning before its call", () => {
    expect(() => verdictOf([write(1, 0, 1), read(1, 5, 4)])).toThrow(HistoryValidationError);
  });

  it("rejects a known output on an operation that never returned", () => {
    expect(() => verdictOf([{ ...read(1, 0, 1), return: NEVER }])).toThrow(/never returns/);
  });

  it("converts an event list into operations", () => {
    const operations = operationsFromEvents<CasRegisterInput, CasRegisterOutput>([
      { kind: "call", id: "w", clientId: 0, input: { kind: "write", value: 1 } },
      { kind: "call", id: "r", clientId: 1, input: { kind: "read" } },
      { kind: "return", id: "r", output: { kind: "read", value: 1 } },
      { kind: "call", id: "u", clientId: 2, input: { kind: "write", value: 2 } },
      { kind: "return", id: "w", output: { kind: "write" } },
    ]);
    expect(operations).toEqual([
      { clientId: 0, input: { kind: "write", value: 1 }, output: { kind: "write" }, call: 0, return: 4 },
      { clientId: 1, input: { kind: "read" }, output: { kind: "read", value: 1 }, call: 1, return: 2 },
      { clientId: 2, input: { kind: "write", value: 2 }, output: undefined, call: 3, return: NEVER },
    ]);
    expect(verdictOf(operations)).toBe("linearizable");
  });

  it("rejects a return event without a call", () => {
    expect(() => operationsFromEvents([{ kind: "return", id: 7, output: undefined }])).toThrow(HistoryValidationError);
  });
});

describe("models compared with equal instead of hash", () => {
  it("give the same verdicts", () => {
    const { hash: _unused, ...rest } = casRegisterModel;
    const equalOnly: Model<RegisterValue, CasRegisterInput, CasRegisterOutput> = { ...rest, equal: (left, right) => left === right };
    expect(checkOperations(equalOnly, [write(1, 0, 10), read(null, 1, 2), read(1, 3, 4)]).verdict).toBe("linearizable");
    expect(checkOperations(equalOnly, [write(1, 0, 10), read(1, 1, 2), read(null, 3, 4)]).verdict).toBe("not linearizable");
  });
});

const get = (key: string, value: string, call: number, returned: number, clientId = 0): MapOperation => ({
  clientId,
  input: { kind: "get", key },
  output: { kind: "get", value },
  call,
  return: returned,
});
const append = (key: string, value: string, call: number, returned: number, clientId = 1): MapOperation => ({
  clientId,
  input: { kind: "append", key, value },
  output: { kind: "append" },
  call,
  return: returned,
});
const put = (key: string, value: string, call: number, returned: number, clientId = 2): MapOperation => ({
  clientId,
  input: { kind: "put", key, value },
  output: { kind: "put" },
  call,
  return: returned,
});

describe("key-value map", () => {
  it("reads never-written keys as empty and appends in order", () => {
    const history = [get("a", "", 0, 1), append("a", "x", 2, 3), append("a", "y", 4, 5), get("a", "xy", 6, 7), put("a", "z", 8, 9), get("a", "z", 10, 11)];
    expect(checkOperations(keyValueModel, history).verdict).toBe("linearizable");
  });

  it("orders concurrent appends as a later read saw them", () => {
    const history = [append("a", "x", 0, 10), append("a", "y", 1, 9), get("a", "yx", 11, 12)];
    expect(checkOperations(keyValueModel, history).verdict).toBe("linearizable");
  });

  it("partitions by key and names the failing key's partition", () => {
    const history = [append("a", "x", 0, 1), get("b", "", 2, 3), append("b", "y", 4, 5), get("b", "", 6, 7), get("a", "x", 8, 9)];
    const result = checkOperations(keyValueModel, history);
    expect(result.verdict).toBe("not linearizable");
    if (result.verdict !== "not linearizable") return;
    expect(result.statistics.partitions).toBe(2);
    expect(result.failingPartition.index).toBe(1);
    expect(result.failingPartition.operations.map((operation) => operation.input.key)).toEqual(["b", "b", "b"]);
  });

  it("stops at the first failing partition while another is still searching", () => {
    // Key "a": 14 concurrent appends and a read no order can produce. Refuting
    // it means trying every order of the appends: far more than 10^6 steps.
    const concurrentAppends = Array.from({ length: 14 }, (_, index) => append("a", String.fromCharCode(97 + index), index, 100, index));
    const hardButHopeless = [...concurrentAppends, get("a", "impossible", 101, 102)];
    const quickFailure = [append("b", "x", 0, 1), get("b", "", 2, 3)];
    const result = checkOperations(keyValueModel, [...hardButHopeless, ...quickFailure], { sliceSteps: 100, budget: { steps: 1_000_000 } });
    expect(result.verdict).toBe("not linearizable");
    if (result.verdict !== "not linearizable") return;
    expect(result.failingPartition.index).toBe(1);
    expect(result.statistics.partitionsDecided).toBe(1);
    expect(result.statistics.steps).toBeLessThanOrEqual(200);
  });
});

describe("budget", () => {
  /** Ten overlapping writes and reads: linearizable, but it takes the search more than a few steps. */
  const busyHistory = Array.from({ length: 10 }, (_, index) => [write(index, index * 2, 30, index), read(index, index * 2 + 1, 30, 100 + index)]).flat();

  it("needs more steps on the busy history than the budgets below allow", () => {
    const result = checkOperations(casRegisterModel, busyHistory);
    expect(result.verdict).toBe("linearizable");
    expect(result.statistics.steps).toBeGreaterThan(5);
  });

  it("reports unknown, not linearizable, when the step budget runs out", () => {
    const result = checkOperations(casRegisterModel, busyHistory, { budget: { steps: 5 } });
    expect(result.verdict).toBe("unknown");
    if (result.verdict !== "unknown") return;
    expect(result.reason).toBe("step budget exhausted");
    expect(result.statistics.steps).toBe(5);
    expect(result.undecidedPartitions).toEqual([0]);
  });

  it("reports unknown when the injected clock passes the time budget", () => {
    let time = 0;
    const now = () => (time += 1_000);
    const result = checkOperations(casRegisterModel, busyHistory, { budget: { milliseconds: 1_500 }, now, sliceSteps: 1 });
    expect(result.verdict).toBe("unknown");
    if (result.verdict !== "unknown") return;
    expect(result.reason).toBe("time budget exhausted");
    expect(result.statistics.steps).toBeGreaterThan(0);
  });

  it("still decides histories that fit in the budget", () => {
    const result = checkOperations(casRegisterModel, [write(1, 0, 1), read(null, 2, 3)], { budget: { steps: 100, milliseconds: 60_000 } });
    expect(result.verdict).toBe("not linearizable");
  });
});
