import { describe, expect, it } from "vitest";
import { FenceGuard } from "../src/index.js";

describe("FenceGuard", () => {
  it("admits rising and repeated tokens, refuses a lower one, per lock name, and survives a reload", () => {
    const guard = new FenceGuard();
    expect(guard.admit("L", 5)).toBe(true);
    expect(guard.admit("L", 5)).toBe(true);
    expect(guard.admit("L", 9)).toBe(true);
    expect(guard.admit("L", 6)).toBe(false);
    expect(guard.admit("M", 1)).toBe(true);
    expect(guard.highestToken("L")).toBe(9);
    const restored = new FenceGuard();
    restored.load(guard.entries());
    expect(restored.admit("L", 8)).toBe(false);
    expect(restored.admit("L", 10)).toBe(true);
  });
});
