/**
 * Log time as the keepers read it: a leader's own log clock while it leads
 * (a stopped leader's estimate fell behind it and promised sessions too
 * much), the last applied batch's time plus the time since otherwise.
 */
import { expect, it } from "vitest";
import { LogTimeEstimator } from "../src/index.js";

it("on a leader, is the leader's log clock, however late the last batch was applied", () => {
  let now = 0;
  const source = { logTime: 10_000, leaderLogTime: 10_300 as number | undefined };
  const estimator = new LogTimeEstimator(source, () => now);
  expect(estimator.estimate()).toBe(10_300);
  now = 50;
  source.leaderLogTime = 10_350;
  expect(estimator.estimate()).toBe(10_350);
});

it("elsewhere, is the last applied batch's log time plus the time since it was seen to change", () => {
  let now = 100;
  const source = { logTime: 5_000, leaderLogTime: undefined };
  const estimator = new LogTimeEstimator(source, () => now);
  expect(estimator.estimate()).toBe(5_000);
  now = 160;
  expect(estimator.estimate()).toBe(5_060);
  source.logTime = 5_100;
  now = 170;
  expect(estimator.estimate()).toBe(5_100);
});
