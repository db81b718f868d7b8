import { appendFileSync, closeSync, openSync, readSync, readdirSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { SeededRandom } from "@synod/core";
import { losePower } from "@synod/storage-fs";
import type { FaultWindow } from "./run-record.js";

/** The faults a campaign injects. */
export const FAULT_KINDS = [
  "kill",
  "kill-leader",
  "pause",
  "pause-leader",
  "partition",
  "isolate-leader",
  "stale-leader",
  "one-way",
  "slow-links",
  "bitflip",
  "torn-tail",
  "wipe",
  "membership",
  "power-loss",
  "power-loss-leader-disk",
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** One planned fault: what, when (ms after the load starts), for how long, and a draw that picks its target. */
export interface PlannedFault {
  readonly kind: FaultKind;
  readonly at: number;
  readonly durationMs: number;
  /** Picks among the candidates when the fault starts (who leads then is not known in advance). */
  readonly pick: number;
}

/**
 * The fault schedule: a pure function of the seed, one fault at a time with
 * rests between, each kind at least once when the run is long enough. What
 * real processes make of it (who leads when a fault starts) is not
 * deterministic: a seed replays the faults, not the run.
 */
export function planFaults(random: SeededRandom, loadMs: number, only: readonly FaultKind[] = FAULT_KINDS): PlannedFault[] {
  if (only.length === 0) throw new RangeError("planFaults needs at least one fault kind");
  const plan: PlannedFault[] = [];
  const kinds = shuffle([...only], random);
  let at = 1_000 + random.integer(1_000);
  for (let index = 0; at < loadMs - 1_500; index += 1) {
    const kind = index < kinds.length ? (kinds[index] as FaultKind) : (only[random.integer(only.length)] as FaultKind);
    // A stale leader needs time to be one: the others' election, then its clients' sessions running out.
    const durationMs = (kind === "stale-leader" ? 2_000 : 500) + random.integer(2_000);
    plan.push({ kind, at, durationMs, pick: random.integer(1 << 30) });
    at += durationMs + 500 + random.integer(1_500);
  }
  return plan;
}

function shuffle<T>(items: T[], random: SeededRandom): T[] {
  for (let index = items.length - 1; index > 0; index -= 1) {
    const other = random.integer(index + 1);
    [items[index], items[other]] = [items[other] as T, items[index] as T];
  }
  return items;
}

/** What the nemesis does to a cluster (implemented by the campaign's cluster). */
export interface NemesisTarget {
  readonly ids: readonly string[];
  leader(): Promise<string | undefined>;
  kill(id: string): Promise<void>;
  restart(id: string): Promise<void>;
  pause(id: string): void;
  resume(id: string): void;
  dataDirectory(id: string): string;
  /** True while some replica is rebuilding lost state (or was when it went down). */
  rebuilding(): Promise<boolean>;
  wipe(id: string): void;
  /** Notes that a fault damaged `id`'s disk (it may rebuild when it starts): no fault that needs it trusted strikes until it is seen serving again. */
  damaged(id: string): void;
  /** Cuts the directed links `from → to` (peer messages), or heals them all with `undefined`. */
  cut(links: readonly (readonly [string, string])[] | undefined): void;
  /** Slows, reorders, duplicates and drops messages on the directed links, or heals them all with `undefined`. */
  slow(links: readonly (readonly [string, string])[] | undefined): void;
  /** Takes a voter out of the configuration (a log entry; the leader hands over first if it is the one). */
  removeMember(id: string): Promise<void>;
  /** Brings a removed replica back: stopped, wiped, started empty, added again (it catches up, then votes). */
  rejoin(id: string): Promise<void>;
  /** Whether some client operation that began at `since` or later has succeeded. */
  progressed(since: number): boolean;
}

/** A stuttering leader is stopped this long, then runs this long, over and over. */
const STUTTER_STOP_MS = 300;
const STUTTER_RUN_MS = 100;
/** How long after the followers the leader loses power in `power-loss-leader-disk`. */
const POWER_LOSS_STAGGER_MS = 100;

/** After a fault heals, the next waits (this long at most) until the cluster has served a client again. */
export const RECOVERY_WAIT_MS = 10_000;

/** Carries a plan out on a cluster and records each fault's window. */
export class Nemesis {
  readonly windows: FaultWindow[] = [];
  private stopped = false;
  /** Replicas a membership fault took out and could not bring back. */
  private readonly outOfConfiguration = new Set<string>();

  constructor(
    private readonly target: NemesisTarget,
    private readonly clock: () => number,
  ) {}

  stop(): void {
    this.stopped = true;
  }

  /**
   * Strikes each planned fault at its time, or later: after a fault heals,
   * the next waits until the cluster has served a client again (up to
   * `RECOVERY_WAIT_MS`; the campaign's progress check fails a cluster that
   * did not). Faults piled onto a cluster that has not recovered would only
   * show what any cluster does with too few replicas left.
   */
  async run(plan: readonly PlannedFault[], loadStartedAt: number, loadEndsAt = Number.POSITIVE_INFINITY): Promise<void> {
    for (const fault of plan) {
      const healedAt = this.windows.at(-1)?.end;
      if (healedAt !== undefined) {
        while (!this.stopped && !this.target.progressed(healedAt) && this.clock() < healedAt + RECOVERY_WAIT_MS) await sleep(100);
      }
      const wait = loadStartedAt + fault.at - this.clock();
      if (wait > 0) await sleep(wait);
      if (this.stopped || this.clock() > loadEndsAt - 1_500) return;
      await this.strike(fault);
    }
  }

  /**
   * Whether a disk must not be lost now: while a replica rebuilds (or may),
   * or one is out of the configuration, another lost disk could leave too
   * few trusted voters ever to elect a leader again.
   */
  private async diskMustBeSpared(): Promise<boolean> {
    return this.outOfConfiguration.size > 0 || (await this.target.rebuilding());
  }

  /** Starts every replica again, one after another (each back once it answers). */
  private async restartAll(): Promise<void> {
    for (const id of this.target.ids) await this.target.restart(id);
  }

  private async strike(fault: PlannedFault): Promise<void> {
    const target = this.target;
    const ids = target.ids;
    const leader = await target.leader();
    const followers = ids.filter((id) => id !== leader);
    const any = ids[fault.pick % ids.length] as string;
    const follower = followers[fault.pick % Math.max(1, followers.length)] ?? any;
    const start = this.clock();
    let what = "";
    let heal: () => Promise<void> | void = () => undefined;
    switch (fault.kind) {
      case "kill":
      case "kill-leader": {
        const victim = fault.kind === "kill-leader" ? (leader ?? any) : any;
        await target.kill(victim);
        what = victim;
        heal = () => target.restart(victim);
        break;
      }
      case "pause":
      case "pause-leader": {
        const victim = fault.kind === "pause-leader" ? (leader ?? any) : any;
        target.pause(victim);
        what = victim;
        heal = () => target.resume(victim);
        break;
      }
      case "partition": {
        // A minority on one side: it cannot commit; the majority can.
        const minority = new Set(shuffle([...ids], new SeededRandom(fault.pick)).slice(0, Math.floor((ids.length - 1) / 2)));
        target.cut(bothWays(ids.filter((id) => minority.has(id)), ids.filter((id) => !minority.has(id))));
        what = `${[...minority].join(",")} | ${ids.filter((id) => !minority.has(id)).join(",")}`;
        heal = () => target.cut(undefined);
        break;
      }
      case "isolate-leader": {
        const isolated = leader ?? any;
        target.cut(bothWays([isolated], ids.filter((id) => id !== isolated)));
        what = `${isolated} | rest`;
        heal = () => target.cut(undefined);
        break;
      }
      case "stale-leader": {
        // The leader is cut off from its peers (its clients still reach it) and stutters: stopped most
        // of the time, as a starved VM or a process in GC pauses is. Its own clock of ticks hardly moves,
        // so it believes it leads long after the others elected another and went on; what it may still
        // answer on its own (reads, keepalives) must not claim more than its lease and the log allow.
        const stale = leader ?? any;
        target.cut(bothWays([stale], ids.filter((id) => id !== stale)));
        what = `${stale} | rest, stuttering`;
        let stuttering = true;
        const stutter = (async () => {
          try {
            while (stuttering) {
              target.pause(stale);
              await sleep(STUTTER_STOP_MS);
              target.resume(stale);
              await sleep(STUTTER_RUN_MS);
            }
          } catch (error) {
            // It exited on its own (the checks will say why): nothing left to stop or start.
            what = `${stale} | rest, stuttering until it exited (${(error as Error).message})`;
          }
        })();
        heal = async () => {
          stuttering = false;
          try {
            await stutter;
          } finally {
            target.cut(undefined);
          }
        };
        break;
      }
      case "one-way": {
        // The leader hears the others, but they do not hear it.
        const from = leader ?? any;
        target.cut(ids.filter((id) => id !== from).map((to) => [from, to] as const));
        what = `${from} -/-> rest`;
        heal = () => target.cut(undefined);
        break;
      }
      case "slow-links": {
        const links = ids.flatMap((from) => ids.filter((to) => to !== from).map((to) => [from, to] as const));
        target.slow(links);
        what = "all links";
        heal = () => target.slow(undefined);
        break;
      }
      case "bitflip":
      case "torn-tail":
      case "wipe": {
        // A follower's disk, while it is down: it comes back and must notice. One lost disk at a time:
        // while another replica rebuilds, a second loss could leave too few trusted voters ever to elect
        // a leader (as losing a majority's disks would), so the fault is a plain kill then.
        await target.kill(follower);
        if (await this.diskMustBeSpared()) {
          what = `${follower} (disk spared: another replica is rebuilding, or out of the configuration)`;
          heal = () => target.restart(follower);
          break;
        }
        const directory = target.dataDirectory(follower);
        target.damaged(follower);
        if (fault.kind === "wipe") target.wipe(follower);
        else if (fault.kind === "bitflip") flipBit(directory, fault.pick);
        else tearTail(directory, fault.pick);
        what = follower;
        heal = () => target.restart(follower);
        break;
      }
      case "power-loss": {
        // The whole cluster loses power at once: every replica stops, and what it wrote but had not
        // synced is gone (the servers run with --durability-journal, which notes what was synced).
        // Anything acknowledged must have been durable on a majority, and survives.
        await Promise.all(ids.map((id) => target.kill(id)));
        // Whatever happens to one replica's log, every replica starts again.
        heal = () => this.restartAll();
        const lost = ids.map((id) => lostOnPowerLoss(target, id));
        what = `all (unsynced bytes lost: ${lost.join(", ")})`;
        break;
      }
      case "power-loss-leader-disk": {
        // Power fails on the followers first and on the leader a moment later, and the leader's disk does
        // not come back (its machine is replaced): it restarts empty and rebuilds from the others. What it
        // acknowledged in that moment rests on the followers' disks alone: each acknowledgement must have
        // waited for a majority's fsync, not only the leader's. Not while a replica rebuilds or one is out
        // of the configuration: too few trusted voters would be left (as with any lost disks).
        const spared = await this.diskMustBeSpared();
        // Asked again: the leader may have changed while the replicas were asked whether they rebuild.
        const lastDown = (await target.leader()) ?? leader ?? any;
        await Promise.all(ids.filter((id) => id !== lastDown).map((id) => target.kill(id)));
        await sleep(POWER_LOSS_STAGGER_MS);
        await target.kill(lastDown);
        const lost = ids.map((id) => lostOnPowerLoss(target, id));
        if (!spared) {
          target.damaged(lastDown);
          target.wipe(lastDown);
        }
        what = `${lastDown} last, ${spared ? "(disk spared: another replica is rebuilding, or out of the configuration)" : "its disk lost"} (unsynced bytes lost: ${lost.join(", ")})`;
        heal = () => this.restartAll();
        break;
      }
      case "membership": {
        // Any voter, the leader too, taken out of the configuration and later brought back. Not while a
        // replica rebuilds: the smaller configuration could then hold too few trusted voters to go on.
        const victim = any;
        if (this.outOfConfiguration.size > 0) {
          await target.kill(victim);
          what = `${victim} (killed instead: ${[...this.outOfConfiguration].join(", ")} never came back)`;
          heal = () => target.restart(victim);
          break;
        }
        if (await target.rebuilding()) {
          await target.kill(victim);
          what = `${victim} (killed instead: a replica is rebuilding)`;
          heal = () => target.restart(victim);
          break;
        }
        try {
          await target.removeMember(victim);
        } catch (error) {
          what = `${victim} (not removed: ${(error as Error).message.split("\n")[0]})`;
          break;
        }
        what = victim;
        heal = () =>
          target.rejoin(victim).catch((error: unknown) => {
            // Still out (or not settled): later membership faults are kills, so the configuration shrinks no further.
            this.outOfConfiguration.add(victim);
            what = `${victim} (not added back: ${(error as Error).message.split("\n")[0]})`;
          });
        break;
      }
    }
    await sleep(fault.durationMs);
    await heal();
    this.windows.push({ kind: fault.kind, target: what, start, end: this.clock() });
  }
}

/** Cuts a stopped replica's log back to what it had synced, as a power cut would; what was lost, for the report. */
function lostOnPowerLoss(target: NemesisTarget, id: string): string {
  try {
    return String(losePower(target.dataDirectory(id))?.lostBytes ?? 0);
  } catch (error) {
    return `? (${(error as Error).message})`;
  }
}

function bothWays(side: readonly string[], other: readonly string[]): (readonly [string, string])[] {
  return side.flatMap((a) => other.flatMap((b) => [[a, b] as const, [b, a] as const]));
}

/** The replica's log segments, largest first. */
function segments(directory: string): { readonly file: string; readonly size: number }[] {
  return readdirSync(directory)
    .filter((name) => /^wal-\d+\.log$/.test(name))
    .map((name) => ({ file: join(directory, name), size: statSync(join(directory, name)).size }))
    .sort((x, y) => y.size - x.size);
}

/** Flips one bit somewhere in the middle half of the largest log segment (nothing to flip in an empty log). */
function flipBit(directory: string, pick: number): void {
  const segment = segments(directory)[0];
  if (segment === undefined || segment.size < 64) return;
  const offset = Math.floor(segment.size / 4) + (pick % Math.max(1, Math.floor(segment.size / 2)));
  const fd = openSync(segment.file, "r+");
  try {
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, offset);
    byte[0] = (byte[0] as number) ^ (1 << (pick % 8));
    writeSync(fd, byte, 0, 1, offset);
  } finally {
    closeSync(fd);
  }
}

/**
 * A torn write at the end of the newest segment: the start of a frame that
 * never finished (a power cut during an unacknowledged write leaves such a
 * tail; the process crash alone would not). Bytes already synced are never
 * touched: losing those would be corruption no checksum can see.
 */
function tearTail(directory: string, pick: number): void {
  const newest = readdirSync(directory)
    .filter((name) => /^wal-\d+\.log$/.test(name))
    .sort()
    .at(-1);
  if (newest === undefined) return;
  const random = new SeededRandom(pick);
  const torn = Buffer.from(Array.from({ length: 1 + random.integer(40) }, () => random.integer(256)));
  appendFileSync(join(directory, newest), torn);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
