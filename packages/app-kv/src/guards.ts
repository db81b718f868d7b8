import type { KeyNode, MvccStore } from "./mvcc.js";
import type { CompareOperator, CompareTest, KvTest } from "./ops.js";

/**
 * MultiOp guards (core's `test`), with etcd's `Compare` semantics, evaluated
 * on the current state (the state the transaction's writes will build on).
 */
export function evaluateTest(test: KvTest, store: MvccStore): boolean {
  switch (test.type) {
    case "exists":
      return store.current(test.key) !== undefined;
    case "absent":
      return store.current(test.key) === undefined;
    case "compare":
      return test.end === undefined ? compareOne(test, store.current(test.key)) : compareRange(test, store);
  }
}

/** Every key of `[key, end)` must satisfy the comparison; an empty range compares as a missing key. */
function compareRange(test: CompareTest, store: MvccStore): boolean {
  let holds = true;
  let seen = false;
  store.scan(test.key, test.end, store.revision, (_key, node) => {
    seen = true;
    holds = compareOne(test, node);
    return holds;
  });
  return seen ? holds : compareOne(test, undefined);
}

/**
 * A missing key has version, createRevision, modRevision and lease 0, and no
 * value: every value comparison on it fails, `not-equal` included (etcd:
 * "nil == empty string in grpc; no way to represent missing value").
 */
function compareOne(test: CompareTest, node: KeyNode | undefined): boolean {
  if (test.target === "value") return node !== undefined && holds(compare(node.value, test.value), test.operator);
  const actual = node === undefined ? 0 : node[test.target];
  return holds(compare(actual, test.value), test.operator);
}

function compare<T extends string | number>(actual: T, expected: T): number {
  return actual < expected ? -1 : actual > expected ? 1 : 0;
}

function holds(order: number, operator: CompareOperator): boolean {
  switch (operator) {
    case "equal":
      return order === 0;
    case "not-equal":
      return order !== 0;
    case "greater":
      return order > 0;
    case "less":
      return order < 0;
  }
}
