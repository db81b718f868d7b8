import type { SeededRandom } from "@synod/core";
import type { FaultOptions } from "./options.js";

/** A fault stream: each holds at most one fault at a time, for a while, then heals it and rests. */
export type NemesisStream = "network" | "process" | "disk";

/** What the nemesis may do to the cluster; implemented by the simulation. */
export interface NemesisTarget {
  readonly ids: readonly string[];
  /** Client names (`c0`, `c1`...): partitions cut clients off from some replicas too. */
  readonly clients: readonly string[];
  readonly cutLinks: Set<string>;
  currentLeader(): string | undefined;
  crash(node: string): void;
  /** Crashes `node` and loses its disk: it restarts rebuilding. False when that would leave too few trusted replicas. */
  wipe(node: string): boolean;
  restart(node: string): void;
  pause(node: string, untilMs: number): void;
  stallDisk(node: string, untilMs: number): void;
  count(fault: "partitions" | "crashes" | "pauses" | "diskStalls" | "wipes"): void;
}

/**
 * The fault schedule of the safety phase, in the manner of Jepsen's nemeses:
 * independent streams for the network (partitions of several shapes, one-way
 * cuts, an isolated leader), processes (crash and restart, pause and resume,
 * often aimed at the leader) and disks (stalls). Each fault holds for a
 * random duration and is then healed, so faults last long enough to matter
 * (an election, a lease) and still overlap across streams.
 */
export class Nemesis {
  private readonly active = new Map<NemesisStream, () => void>();

  constructor(
    private readonly options: FaultOptions,
    private readonly random: SeededRandom,
    private readonly target: NemesisTarget,
  ) {}

  streams(): NemesisStream[] {
    const streams: NemesisStream[] = [];
    if (this.options.partitions && this.target.ids.length > 1) streams.push("network");
    if (this.options.crashes || this.options.pauses || this.options.diskLoss) streams.push("process");
    if (this.options.diskStalls) streams.push("disk");
    return streams;
  }

  /** Milliseconds of rest before a stream's next fault. */
  restMs(): number {
    return 1 + this.random.integer(this.options.meanFaultIntervalMs);
  }

  /** Starts a fault on `stream`; returns how long it holds. */
  start(stream: NemesisStream, nowMs: number): number {
    const duration = 30 + this.random.integer(4 * this.options.meanFaultIntervalMs);
    const heal = this.inject(stream, nowMs + duration);
    if (heal !== undefined) this.active.set(stream, heal);
    return duration;
  }

  /** Heals the fault `stream` holds, if any. */
  end(stream: NemesisStream): void {
    const heal = this.active.get(stream);
    this.active.delete(stream);
    heal?.();
  }

  /** Heals every stream (the start of the liveness phase). */
  endAll(): void {
    for (const stream of [...this.active.keys()]) this.end(stream);
  }

  private inject(stream: NemesisStream, untilMs: number): (() => void) | undefined {
    const target = this.target;
    switch (stream) {
      case "network": {
        const cut = this.networkCut();
        for (const link of cut) target.cutLinks.add(link);
        target.count("partitions");
        return () => {
          for (const link of cut) target.cutLinks.delete(link);
        };
      }
      case "process": {
        const kinds: string[] = [];
        if (this.options.crashes) kinds.push("crash", "crash-leader");
        if (this.options.pauses) kinds.push("pause", "pause-leader");
        if (this.options.diskLoss) kinds.push("wipe");
        const kind = this.pick(kinds);
        const node = kind.endsWith("-leader") ? (target.currentLeader() ?? this.pick(target.ids)) : this.pick(target.ids);
        if (kind === "wipe") {
          if (!target.wipe(node)) return undefined;
          target.count("wipes");
          return () => target.restart(node);
        }
        if (kind.startsWith("crash")) {
          target.crash(node);
          target.count("crashes");
          return () => target.restart(node);
        }
        target.pause(node, untilMs);
        target.count("pauses");
        return undefined;
      }
      case "disk": {
        target.stallDisk(this.pick(target.ids), untilMs);
        target.count("diskStalls");
        return undefined;
      }
    }
  }

  /** The directed links to cut: a random split, a one-way cut, an isolated leader, or a bridge. */
  private networkCut(): string[] {
    const ids = this.target.ids;
    const cut: string[] = [];
    const both = (a: string, b: string) => cut.push(`${a}>${b}`, `${b}>${a}`);
    // Clients land on one side of a split or the other, as clients in the
    // same datacenter as a minority would: they reach only that side.
    const splitClients = (side: ReadonlySet<string>) => {
      for (const client of this.target.clients) {
        const onSide = this.random.chance(0.5);
        for (const id of ids) if (side.has(id) !== onSide) both(client, id);
      }
    };
    switch (this.random.integer(4)) {
      case 0: {
        const side = new Set(ids.filter(() => this.random.chance(0.5)));
        for (const a of ids) for (const b of ids) if (side.has(a) && !side.has(b)) both(a, b);
        splitClients(side);
        break;
      }
      case 1: {
        const from = this.pick(ids);
        const to = this.pick(ids.filter((id) => id !== from));
        cut.push(`${from}>${to}`);
        break;
      }
      case 2: {
        const leader = this.target.currentLeader() ?? this.pick(ids);
        for (const other of ids) if (other !== leader) both(leader, other);
        splitClients(new Set([leader]));
        break;
      }
      default: {
        // A bridge: two halves that cannot see each other, and one node that sees both.
        const bridge = this.pick(ids);
        const rest = ids.filter((id) => id !== bridge);
        const half = new Set(rest.filter((_, index) => index % 2 === 0));
        for (const a of rest) for (const b of rest) if (half.has(a) && !half.has(b)) both(a, b);
      }
    }
    return cut;
  }

  private pick<T>(items: readonly T[]): T {
    return items[this.random.integer(items.length)] as T;
  }
}
