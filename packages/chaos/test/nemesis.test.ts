/**
 * The nemesis's plans and what each fault aimed at a known bug does to a
 * cluster, on a recording stand-in for the cluster (the campaigns run them
 * on real processes).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SeededRandom } from "@synod/core";
import { POWER_LOSS_FILE } from "@synod/storage-fs";
import { afterEach, describe, expect, it } from "vitest";
import { FAULT_KINDS, Nemesis, type NemesisTarget, planFaults } from "../src/index.js";
import { REBUILD_SETTLE_MS, RebuildWatch } from "../src/rebuild-watch.js";

const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

/** A cluster that only records what is done to it, in order. */
function recordingTarget(options: { leader?: string; rebuilding?: boolean } = {}): { target: NemesisTarget; events: string[] } {
  const root = mkdtempSync(join(tmpdir(), "synod-nemesis-"));
  directories.push(root);
  const events: string[] = [];
  const ids = ["n1", "n2", "n3"];
  for (const id of ids) {
    // A log with 100 bytes written, 60 of them synced.
    mkdirSync(join(root, id));
    writeFileSync(join(root, id, "wal-00000001.log"), Buffer.alloc(100));
    writeFileSync(join(root, id, POWER_LOSS_FILE), JSON.stringify({ segment: "wal-00000001.log", bytes: 60 }));
  }
  const target: NemesisTarget = {
    ids,
    leader: async () => options.leader,
    kill: async (id) => void events.push(`kill ${id}`),
    restart: async (id) => void events.push(`restart ${id}`),
    pause: (id) => void events.push(`pause ${id}`),
    resume: (id) => void events.push(`resume ${id}`),
    dataDirectory: (id) => join(root, id),
    rebuilding: async () => options.rebuilding === true,
    wipe: (id) => void events.push(`wipe ${id}`),
    damaged: (id) => void events.push(`damaged ${id}`),
    cut: (links) => void events.push(links === undefined ? "heal cuts" : `cut ${links.map(([from, to]) => `${from}>${to}`).join(" ")}`),
    slow: (links) => void events.push(links === undefined ? "heal slow" : "slow"),
    removeMember: async (id) => void events.push(`remove ${id}`),
    rejoin: async (id) => void events.push(`rejoin ${id}`),
    progressed: () => true,
  };
  return { target, events };
}

async function strike(target: NemesisTarget, kind: (typeof FAULT_KINDS)[number], durationMs = 1_000): Promise<Nemesis> {
  const nemesis = new Nemesis(target, () => performance.now());
  await nemesis.run([{ kind, at: 0, durationMs, pick: 7 }], performance.now());
  return nemesis;
}

describe("planFaults", () => {
  it("draws every kind first, then at random; only the kinds asked for when given", () => {
    const plan = planFaults(new SeededRandom(5), 120_000);
    expect(new Set(plan.slice(0, FAULT_KINDS.length).map((fault) => fault.kind))).toEqual(new Set(FAULT_KINDS));
    expect(planFaults(new SeededRandom(5), 120_000)).toEqual(plan);
    const only = planFaults(new SeededRandom(5), 60_000, ["stale-leader", "power-loss-leader-disk"]);
    expect(only.length).toBeGreaterThan(5);
    expect(new Set(only.map((fault) => fault.kind))).toEqual(new Set(["stale-leader", "power-loss-leader-disk"]));
    expect(() => planFaults(new SeededRandom(5), 60_000, [])).toThrow(RangeError);
  });

  it("gives a stale leader at least two seconds: the others' election, then its clients' sessions running out", () => {
    const stale = planFaults(new SeededRandom(9), 300_000, ["stale-leader"]);
    expect(Math.min(...stale.map((fault) => fault.durationMs))).toBeGreaterThanOrEqual(2_000);
  });
});

describe("faults aimed at known bugs", () => {
  it("stale-leader: cuts the leader off from its peers, stops and starts it over and over while cut off, and heals with it running", async () => {
    const { target, events } = recordingTarget({ leader: "n2" });
    const nemesis = await strike(target, "stale-leader", 1_000);
    expect(events[0]).toBe("cut n2>n1 n1>n2 n2>n3 n3>n2");
    const stutter = events.slice(1, -1);
    expect(stutter.length).toBeGreaterThanOrEqual(4);
    // Stopped and started in turn, ending started: never left stopped.
    stutter.forEach((event, index) => expect(event).toBe(index % 2 === 0 ? "pause n2" : "resume n2"));
    expect(stutter.at(-1)).toBe("resume n2");
    expect(events.at(-1)).toBe("heal cuts");
    expect(nemesis.windows[0]?.target).toBe("n2 | rest, stuttering");
  });

  it("power-loss-leader-disk: the followers lose power first, then the leader, whose disk is lost; every log is cut back to what it synced", async () => {
    const { target, events } = recordingTarget({ leader: "n3" });
    const nemesis = await strike(target, "power-loss-leader-disk", 10);
    expect(events.slice(0, 2).sort()).toEqual(["kill n1", "kill n2"]);
    expect(events.slice(2, 5)).toEqual(["kill n3", "damaged n3", "wipe n3"]);
    expect(events.slice(5)).toEqual(["restart n1", "restart n2", "restart n3"]);
    for (const id of target.ids) expect(readFileSync(join(target.dataDirectory(id), "wal-00000001.log")).length).toBe(60);
    expect(nemesis.windows[0]?.target).toBe("n3 last, its disk lost (unsynced bytes lost: 40, 40, 40)");
  });

  it("power-loss-leader-disk spares the leader's disk while another replica may be rebuilding: too few trusted voters would be left", async () => {
    const { target, events } = recordingTarget({ leader: "n1", rebuilding: true });
    const nemesis = await strike(target, "power-loss-leader-disk", 10);
    expect(events.filter((event) => event.startsWith("wipe") || event.startsWith("damaged"))).toEqual([]);
    expect(events.filter((event) => event.startsWith("kill")).at(-1)).toBe("kill n1");
    expect(nemesis.windows[0]?.target).toContain("(disk spared: another replica is rebuilding");
  });
});

describe("RebuildWatch", () => {
  it("holds a damaged replica as rebuilding until it has been seen serving for a while (its end of rebuild may not be on disk yet)", () => {
    let now = 0;
    const watch = new RebuildWatch(() => now);
    expect(watch.mayBeRebuilding()).toBe(false);
    watch.damaged("n2");
    watch.note("n2", "unreachable");
    expect(watch.mayBeRebuilding()).toBe(true);
    // Never seen rebuilding (it finished while the sampler could not reach it), then serving.
    now = 1_000;
    watch.note("n2", "follower");
    expect(watch.mayBeRebuilding()).toBe(true);
    now = 1_000 + REBUILD_SETTLE_MS;
    expect(watch.mayBeRebuilding()).toBe(false);
  });

  it("counts a replica seen rebuilding, then down, as rebuilding until it serves again", () => {
    let now = 0;
    const watch = new RebuildWatch(() => now);
    watch.note("n1", "rebuilding");
    watch.note("n1", "down");
    now = 60_000;
    expect(watch.mayBeRebuilding()).toBe(true);
    watch.note("n1", "paused");
    expect(watch.mayBeRebuilding()).toBe(true);
    watch.note("n1", "leader");
    now += REBUILD_SETTLE_MS;
    expect(watch.mayBeRebuilding()).toBe(false);
  });

  it("suspects again a replica that goes down before it has served for the settling time", () => {
    let now = 0;
    const watch = new RebuildWatch(() => now);
    watch.note("n3", "rebuilding");
    now = 500;
    watch.note("n3", "follower");
    now = 1_000;
    watch.note("n3", "down");
    now = 10_000;
    expect(watch.mayBeRebuilding()).toBe(true);
    watch.note("n3", "follower");
    expect(watch.mayBeRebuilding()).toBe(true);
    now += REBUILD_SETTLE_MS;
    // Down after it had served long enough: no longer a suspect.
    watch.note("n3", "down");
    expect(watch.mayBeRebuilding()).toBe(false);
  });
});
