import { SeededRandom } from "@synod/core";
import { describe, expect, it } from "vitest";
import { OrderedMap } from "../src/index.js";

/** The reference: a plain Map, sorted on demand. */
function entriesOf(model: Map<string, number>, start = "", end?: string): [string, number][] {
  return [...model].filter(([key]) => key >= start && (end === undefined || key < end)).sort(([a], [b]) => (a < b ? -1 : 1));
}

function collect(map: OrderedMap<number>, start = "", end?: string): [string, number][] {
  const found: [string, number][] = [];
  map.forEachInRange(start, end, (key, value) => {
    found.push([key, value]);
  });
  return found;
}

describe("OrderedMap", () => {
  it("matches a sorted Map under random inserts, updates and deletes, across many chunk splits and merges", () => {
    const random = new SeededRandom(42);
    const map = new OrderedMap<number>();
    const model = new Map<string, number>();
    for (let step = 0; step < 30_000; step += 1) {
      const key = `k${random.integer(3_000)}`;
      if (random.chance(step < 15_000 ? 0.3 : 0.7)) {
        expect(map.delete(key)).toBe(model.delete(key));
      } else {
        map.set(key, step);
        model.set(key, step);
      }
      if (step % 1_000 === 0) {
        map.checkInvariants();
        expect(map.size).toBe(model.size);
        const start = `k${random.integer(3_000)}`;
        const end = random.chance(0.5) ? undefined : `k${random.integer(3_000)}`;
        expect(collect(map, start, end)).toEqual(entriesOf(model, start, end));
      }
    }
    map.checkInvariants();
    expect(collect(map)).toEqual(entriesOf(model));
    for (const key of ["k1", "k2999", "nope", ""]) expect(map.get(key)).toBe(model.get(key));
  });

  it("stops a scan when the visitor returns false", () => {
    const map = new OrderedMap<number>();
    for (let index = 0; index < 2_000; index += 1) map.set(String(index).padStart(4, "0"), index);
    const seen: string[] = [];
    map.forEachInRange("0500", undefined, (key) => {
      seen.push(key);
      return seen.length < 3;
    });
    expect(seen).toEqual(["0500", "0501", "0502"]);
  });

  it("a clone is a frozen view: writes to either side never show in the other", () => {
    const random = new SeededRandom(7);
    const map = new OrderedMap<number>();
    for (let index = 0; index < 5_000; index += 1) map.set(`k${random.integer(10_000)}`, index);
    const before = collect(map);
    const clone = map.clone();
    for (let index = 0; index < 5_000; index += 1) {
      const key = `k${random.integer(10_000)}`;
      if (random.chance(0.5)) map.delete(key);
      else map.set(key, -index);
    }
    expect(collect(clone)).toEqual(before);
    clone.checkInvariants();
    map.checkInvariants();
    const after = collect(map);
    clone.set("k-new", 1);
    clone.delete(before[0]?.[0] ?? "");
    expect(collect(map)).toEqual(after);
  });

  it("handles the empty map and the empty string key", () => {
    const map = new OrderedMap<string>();
    expect(map.get("")).toBeUndefined();
    expect(map.delete("x")).toBe(false);
    map.set("", "empty");
    map.set("a", "a");
    expect(map.get("")).toBe("empty");
    expect(map.has("a")).toBe(true);
    expect(map.size).toBe(2);
  });
});
