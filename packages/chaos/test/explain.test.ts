/**
 * A failed linearizability check in a run's report shows the shortest
 * failing part of the history: a stale read or a lost append hidden among
 * a few hundred correct operations comes out as the operations that prove it.
 */
import { type CasRegisterInput, type CasRegisterOutput, type Operation, casRegisterModel, checkOperations } from "@synod/testkit";
import { expect, it } from "vitest";
import { type ListInput, type ListOutput, listAppendModel } from "../src/workloads/list-model.js";
import { explainFailure } from "../src/workloads/workload.js";

it("a stale read among 300 register operations is shown as the few operations that prove it", () => {
  const operations: Operation<CasRegisterInput, CasRegisterOutput>[] = [];
  for (let index = 0; index < 100; index += 1) {
    const time = index * 10;
    operations.push({ clientId: 0, input: { kind: "write", value: `v${index}` }, output: { kind: "write" }, call: time, return: time + 2 });
    operations.push({ clientId: 1, input: { kind: "read" }, output: { kind: "read", value: `v${index}` }, call: time + 3, return: time + 4 });
    // At index 60 the read returns the value before the last write: stale.
    operations.push({ clientId: 2, input: { kind: "read" }, output: { kind: "read", value: index === 60 ? "v59" : `v${index}` }, call: time + 5, return: time + 6 });
  }
  const result = checkOperations(casRegisterModel, operations);
  expect(result.verdict).toBe("not linearizable");
  const detail = explainFailure(casRegisterModel, operations, result);
  const shown = Number(/the shortest failing part found: (\d+) of 300 operations/.exec(detail)?.[1]);
  expect(shown).toBeGreaterThan(1);
  expect(shown).toBeLessThanOrEqual(4);
  expect(detail).toContain("v59");
});

it("a lost append among 200 list operations is shown as the read that misses it, the append, and the appends that read shows", () => {
  const operations: Operation<ListInput, ListOutput>[] = [];
  const list: string[] = [];
  for (let index = 0; index < 100; index += 1) {
    const time = index * 10;
    const element = `w0.${index}`;
    operations.push({ clientId: 0, input: { kind: "append", element }, output: { kind: "append" }, call: time, return: time + 2 });
    list.push(element);
    // From index 70 on, reads miss the acknowledged append of index 50.
    const seen = index >= 70 ? list.filter((item) => item !== "w0.50") : [...list];
    operations.push({ clientId: 1, input: { kind: "read" }, output: { kind: "read", elements: seen }, call: time + 3, return: time + 4 });
  }
  const result = checkOperations(listAppendModel, operations);
  expect(result.verdict).toBe("not linearizable");
  const detail = explainFailure(listAppendModel, operations, result);
  const shown = Number(/the shortest failing part found: (\d+) of 200 operations/.exec(detail)?.[1]);
  // The first read without w0.50 shows 70 elements, each of which some append must have written:
  // 70 appends, the lost one, and that read. Nothing smaller proves it.
  expect(shown).toBe(72);
  expect(detail).toContain("w0.50");
});
