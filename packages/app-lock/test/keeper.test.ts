/**
 * The keeper's keepalive answer, on a stand-in node: the time left is
 * measured by the leader's log clock (what a successor's clock continues
 * from), not by the last applied batch's log time plus the time since it
 * changed, which falls behind when applying was late.
 */
import { afterEach, expect, it } from "vitest";
import type { LockMachine } from "../src/lock-machine.js";
import { type LockNode, SessionKeeper } from "../src/index.js";

const keepers: SessionKeeper[] = [];
afterEach(() => {
  for (const keeper of keepers.splice(0)) keeper.stop();
});

/** A keeper on a leader whose last applied batch says `logTime`, while its log clock says `leaderLogTime`; one session with `deadline`. */
function keeperOn(logTime: number, leaderLogTime: number | undefined, deadline: number): SessionKeeper {
  const node = { status: () => ({ role: "leader" }), logTime, leaderLogTime, propose: async () => undefined } as unknown as LockNode;
  const session = { id: "s1", ttlMs: 1_200, secretHash: "h", deadline };
  const machine = { session: (id: string) => (id === "s1" ? session : undefined), nextDeadline: undefined, nextDelayEnd: undefined } as unknown as LockMachine;
  const keeper = new SessionKeeper(node, machine, { warn: () => undefined }, { intervalMs: 60_000 });
  keepers.push(keeper);
  return keeper;
}

it("answers a keepalive with the time left by the leader's log clock, even when the last batch was applied late", () => {
  // The last batch applied carries log time 10 000 (it was applied late: a stop between proposing and
  // applying it), while the leader's clock is at 10 300: 900 ms are left, not 1 200.
  expect(keeperOn(10_000, 10_300, 11_200).keepalive("s1", "h")).toEqual({ ok: true, ttlMs: 1_200, remainingMs: 900 });
  // Past the deadline by the log clock: nothing is left.
  expect(keeperOn(10_000, 11_500, 11_200).keepalive("s1", "h")).toEqual({ ok: true, ttlMs: 1_200, remainingMs: 0 });
});

it("refuses a keepalive for a session it does not know, or with the wrong secret", () => {
  const keeper = keeperOn(10_000, 10_000, 11_200);
  expect(keeper.keepalive("s2", "h")).toMatchObject({ ok: false, error: { code: "SESSION_NOT_FOUND" } });
  expect(keeper.keepalive("s1", "wrong")).toMatchObject({ ok: false, error: { code: "SESSION_AUTH_FAILED" } });
});
