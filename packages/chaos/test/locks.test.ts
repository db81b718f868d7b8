/**
 * The lock workload's checks, on hand-made grants and writes: each passes
 * a correct history and names what is wrong in a broken one.
 */
import { describe, expect, it } from "vitest";
import { type FencedWrite, type Grant, fencedInOrder, oneHolderAtATime, tokensRise, uniqueTokens } from "../src/workloads/locks.js";

function grant(session: string, token: number, askedAt: number, grantedAt: number, lastHeldAt = grantedAt): Grant {
  return { worker: Number(session.slice(1)), session, lock: "L", token, askedAt, grantedAt, lastHeldAt };
}

function write(token: number, at: number, admitted: boolean, stale = false): FencedWrite {
  return { worker: 0, lock: "L", token, at, admitted, stale };
}

/** Holders one after another, each sure of the lock until just before the next grant answered. */
const orderly = [grant("s1", 1, 0, 10, 90), grant("s2", 2, 20, 100, 190), grant("s3", 3, 150, 200, 260)];

describe("lock checks", () => {
  it("pass an orderly history", () => {
    for (const check of [uniqueTokens("L", orderly), tokensRise("L", orderly), oneHolderAtATime("L", orderly)]) expect(check.passed, check.name).toBe(true);
    expect(fencedInOrder("L", [write(1, 50, true), write(2, 150, true), write(1, 160, false, true), write(3, 250, true)], orderly).passed).toBe(true);
  });

  it("catch a token granted to two sessions", () => {
    const result = uniqueTokens("L", [...orderly, grant("s4", 2, 300, 310)]);
    expect(result.passed).toBe(false);
    expect(result.detail).toContain("token 2 granted to s2");
  });

  it("catch a token lower than one granted before it was asked for", () => {
    const result = tokensRise("L", [grant("s1", 5, 0, 10), grant("s2", 4, 20, 30)]);
    expect(result.passed).toBe(false);
    expect(result.detail).toContain("token 4");
  });

  it("allow a lower token whose grant was merely answered late (the two acquires overlapped)", () => {
    expect(tokensRise("L", [grant("s1", 4, 0, 50), grant("s2", 5, 10, 20)]).passed).toBe(true);
  });

  it("catch two holders sure of the lock at once", () => {
    const result = oneHolderAtATime("L", [grant("s1", 1, 0, 10, 120), grant("s2", 2, 20, 100)]);
    expect(result.passed).toBe(false);
    expect(result.detail).toContain("s1 (token 1) was sure it held L until");
  });

  it("catch a fenced write admitted out of token order, a refused write whose holder was sure, and a token never granted", () => {
    expect(fencedInOrder("L", [write(2, 150, true), write(1, 160, true)], orderly).detail).toContain("admitted token 1 after token 2");
    expect(fencedInOrder("L", [write(2, 150, true), write(1, 160, false)], orderly).detail).toContain("was sure it held L (token 1)");
    expect(fencedInOrder("L", [write(9, 150, true)], orderly).detail).toContain("token 9, never granted");
  });
});
