import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SeededRandom } from "@synod/core";
import { type RunningKvServer, startKvServer } from "@synod/app-kv";
import { type Operation, checkOperations } from "@synod/testkit";
import { freePort } from "@synod/testkit/processes";
import { silentLogger } from "@synod/transport-ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppendWorkload, checkListReads, checkListsLinearizable } from "../src/workloads/append.js";
import { BankWorkload, type BankRead, bankReadAnomaly, checkBankReads } from "../src/workloads/bank.js";
import { type ListInput, type ListOutput, listAppendModel, renderList } from "../src/workloads/list-model.js";
import type { Workload } from "../src/workloads/workload.js";

type ListOperation = Operation<ListInput, ListOutput>;

const append = (clientId: number, element: string, call: number, returned: number | undefined): ListOperation => ({
  clientId,
  input: { kind: "append", element },
  output: returned === undefined ? undefined : { kind: "append" },
  call,
  return: returned ?? Number.POSITIVE_INFINITY,
});

const read = (clientId: number | string, elements: readonly string[], call: number, returned: number): ListOperation => ({
  clientId,
  input: { kind: "read" },
  output: { kind: "read", elements },
  call,
  return: returned,
});

describe("listAppendModel", () => {
  it("accepts concurrent appends read in either order, and an unknown append that took effect or not", () => {
    const history = [append(1, "a", 0, 10), append(2, "b", 1, 9), read(3, ["b", "a"], 11, 12), append(1, "c", 13, undefined), read(3, ["b", "a"], 14, 15), read(2, ["b", "a", "c"], 16, 17)];
    expect(checkOperations(listAppendModel, history).verdict).toBe("linearizable");
  });

  it("rejects a lost append: acknowledged, then missing from a later read", () => {
    const history = [append(1, "a", 0, 1), append(2, "b", 2, 3), read(3, ["a"], 4, 5)];
    expect(checkOperations(listAppendModel, history).verdict).toBe("not linearizable");
  });

  it("rejects a reordered list: appends one after the other, read the other way round", () => {
    const history = [append(1, "a", 0, 1), append(2, "b", 2, 3), read(3, ["b", "a"], 4, 5)];
    expect(checkOperations(listAppendModel, history).verdict).toBe("not linearizable");
  });

  it("rejects a stale read: shorter than a read that ended before it began", () => {
    const history = [append(1, "a", 0, undefined), read(2, ["a"], 1, 2), read(3, [], 3, 4)];
    expect(checkOperations(listAppendModel, history).verdict).toBe("not linearizable");
  });

  it("tells lists apart whatever their elements hold", () => {
    const hash = listAppendModel.hash as (state: readonly string[]) => string;
    expect(hash(["a b"])).not.toBe(hash(["a", "b"]));
  });

  it("shows a long list by its ends", () => {
    const elements = Array.from({ length: 40 }, (_, index) => `w0.${index}`);
    expect(renderList(elements)).toBe("[w0.0 w0.1 … 34 more … w0.36 w0.37 w0.38 w0.39]");
    expect(renderList(["w1.2"])).toBe("[w1.2]");
  });
});

describe("append checks", () => {
  const valid = new Map([
    ["l0", [append(1, "a", 0, 2), append(2, "b", 1, 3), read(3, ["a"], 1, 2), read("final", ["a", "b"], 10, 11)]],
    ["l1", [append(1, "c", 0, undefined), read("final", [], 10, 11)]],
  ]);
  const validFinals = new Map([
    ["l0", ["a", "b"]],
    ["l1", []],
  ]);

  it("pass a valid history", () => {
    expect(checkListsLinearizable(valid, 1_000)).toMatchObject({ passed: true, name: "append lists linearizable (2 keys, 6 operations)" });
    expect(checkListReads(valid, validFinals).map((check) => check.passed)).toEqual([true, true, true]);
  });

  it("flag a lost acknowledged append", () => {
    const history = new Map([["l0", [append(1, "a", 0, 1), append(2, "b", 2, 3), read("final", ["a"], 10, 11)]]]);
    const linearizable = checkListsLinearizable(history, 1_000);
    expect(linearizable.passed).toBe(false);
    expect(linearizable.detail).toContain("l0: the shortest failing part found: 3 of 3 operations");
    const [, , lost] = checkListReads(history, new Map([["l0", ["a"]]]));
    expect(lost).toMatchObject({ passed: false });
    expect(lost?.detail).toContain("acknowledged append b is missing from the final read [a]");
  });

  it("flag a duplicate element, an element never appended, and a read that is no prefix of the final one", () => {
    const history = new Map([["l0", [append(1, "a", 0, 1), append(2, "b", 2, 3), read(3, ["a", "a"], 4, 5), read(3, ["x"], 4, 5), read(3, ["b"], 6, 7), read("final", ["a", "b"], 10, 11)]]]);
    const [malformed, unordered, lost] = checkListReads(history, new Map([["l0", ["a", "b"]]]));
    expect(malformed?.passed).toBe(false);
    expect(malformed?.detail).toContain("a appears twice in [a a]");
    expect(malformed?.detail).toContain("x was read, but no append of it can have taken effect");
    expect(unordered?.passed).toBe(false);
    expect(unordered?.detail).toContain("at position 0 it holds b, the final read a");
    expect(unordered?.detail).toContain("at position 1 it holds a, the final read b");
    expect(lost?.passed).toBe(true);
  });

  it("flag a read longer than the final one", () => {
    const history = new Map([["l0", [append(1, "a", 0, 1), append(2, "b", 2, undefined), read(3, ["a", "b"], 4, 5), read("final", ["a"], 10, 11)]]]);
    const [, unordered] = checkListReads(history, new Map([["l0", ["a"]]]));
    expect(unordered).toMatchObject({ passed: false, detail: "l0: a read of 2 elements is not a prefix of the final read of 1: it goes on past its end with b" });
  });

  it("fail an acknowledged append whose key had no final read", () => {
    const history = new Map([["l0", [append(1, "a", 0, 1), read(3, ["a"], 4, 5)]]]);
    const [, unordered, lost] = checkListReads(history, new Map());
    expect(unordered?.passed).toBe(true);
    expect(lost).toMatchObject({ passed: false, detail: "l0: acknowledged append a unverified: the final read did not answer" });
  });
});

describe("bank checks", () => {
  const accounts = ["bank/a0", "bank/a1", "bank/a2", "bank/a3", "bank/a4"];
  const bank = (...balances: string[]): ReadonlyMap<string, string> => new Map(balances.map((balance, index) => [`bank/a${index}`, balance]));

  it("accept a read that sees every account and the whole total", () => {
    expect(bankReadAnomaly(bank("100", "80", "120", "0", "200"), accounts, 500)).toBeUndefined();
  });

  it("flag a total of 499, a negative balance, a missing account, a balance that is no number", () => {
    expect(bankReadAnomaly(bank("100", "99", "100", "100", "100"), accounts, 500)).toBe("the balances total 499, not 500");
    expect(bankReadAnomaly(bank("110", "-10", "100", "100", "200"), accounts, 500)).toBe("bank/a1 is overdrawn at -10");
    expect(bankReadAnomaly(bank("100", "100", "100", "100"), accounts, 500)).toBe("1 of 5 accounts missing (bank/a4)");
    expect(bankReadAnomaly(bank("100", "100", "1e2", "100", "100"), accounts, 500)).toBe('bank/a2 holds "1e2", not a balance');
  });

  it("count the reads checked and name the wrong one", () => {
    const reads: BankRead[] = [
      { time: 1_000, balances: bank("100", "100", "100", "100", "100") },
      { time: 2_500, balances: bank("100", "99", "100", "100", "100") },
    ];
    const [checked, final] = checkBankReads(reads, reads[0], accounts, 500);
    expect(checked).toMatchObject({ name: "bank reads see 5 accounts totalling 500 (2 reads)", passed: false });
    expect(checked.detail).toContain("read at 2.500 s: the balances total 499, not 500 (a0=100 a1=99 a2=100 a3=100 a4=100)");
    expect(final.passed).toBe(true);
  });

  it("fail when the final read did not answer", () => {
    const [checked, final] = checkBankReads([], undefined, accounts, 500);
    expect(checked.passed).toBe(true);
    expect(final).toMatchObject({ passed: false, detail: "the final read did not answer" });
  });
});

/**
 * The workloads end to end against one in-process replica (no faults): a
 * second of load, the final reads, and every check passing. Light on
 * purpose: the fault campaigns are `campaign.test.ts`'s.
 */
describe("workloads against one replica", () => {
  let server: RunningKvServer | undefined;
  let urls: string[] = [];
  let directory = "";

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), "chaos-workloads-"));
    const url = `ws://127.0.0.1:${await freePort()}`;
    server = await startKvServer({ id: "n1", members: [{ id: "n1", url }], dataDir: join(directory, "n1"), tickMs: 20 }, { logger: silentLogger });
    urls = [url];
  });

  afterAll(async () => {
    await server?.stop();
    await rm(directory, { recursive: true, force: true });
  });

  async function exercise(workload: Workload, milliseconds: number): Promise<void> {
    let running = true;
    const stopped = workload.run(new SeededRandom(7), () => running);
    await new Promise((resolve) => setTimeout(resolve, milliseconds));
    running = false;
    await stopped;
    await workload.finish();
    await workload.close();
  }

  it("append: every check passes and the lists move on to new generations", async () => {
    const began = performance.now();
    const workload = new AppendWorkload({ urls, clock: () => performance.now() - began }, ["l0", "l1"], 4, 10);
    await exercise(workload, 1_500);
    const checks = workload.check(5_000);
    expect(checks.filter((check) => !check.passed)).toEqual([]);
    const appended = workload.records.filter((record) => record.kind === "append" && record.outcome === "ok").length;
    expect(appended).toBeGreaterThan(40);
    // Lists of at most about 10 elements: the appends spread over several generations of each.
    const keys = Number(/\((\d+) keys/.exec(checks[0]?.name ?? "")?.[1]);
    expect(keys).toBeGreaterThan(4);
    expect(keys).toBeLessThanOrEqual(Math.ceil(appended / 10) + 2);
    expect(workload.records.every((record) => record.workload === "append")).toBe(true);
  });

  it("bank: every check passes, over many transfers", async () => {
    const began = performance.now();
    const workload = new BankWorkload({ urls, clock: () => performance.now() - began });
    await exercise(workload, 1_500);
    const checks = workload.check();
    expect(checks.filter((check) => !check.passed)).toEqual([]);
    expect(workload.records.filter((record) => record.kind === "transfer" && record.outcome === "ok").length).toBeGreaterThan(10);
    expect(workload.records.filter((record) => record.kind === "setup")).toHaveLength(1);
  });
});
