import { describe, expect, it } from "vitest";
import {
  type Command,
  DurableImage,
  InvariantError,
  type Message,
  NotLeaderError,
  OverloadedError,
  type PlantedBug,
  type Ready,
  Replica,
  type ReplicaOptions,
  SeededRandom,
  ZERO_BALLOT,
  compareBallots,
} from "../src/index.js";

/** A vote vouches for durable acceptor state: it may leave only after its persist. */
const isVote = (message: Message): boolean => message.type === "promise" || (message.type === "accepted" && message.slots.length > 0);

const opCommand = (seq: number): Command => ({ session: "s", seq, body: { type: "op", op: seq } });

interface Member {
  replica: Replica;
  readonly image: DurableImage;
  readonly random: SeededRandom;
}

interface ClusterOptions {
  readonly seed: number;
  readonly ids?: readonly string[];
  readonly options?: Partial<ReplicaOptions>;
  /** Probability that a message is lost. */
  readonly loss?: number;
  readonly bugs?: readonly PlantedBug[];
}

/**
 * A synchronous driver for a handful of replicas: a shared message pool, a
 * durable image per replica, a fake clock, and a seeded network. It follows
 * the `Ready` contract (send `messages`, persist, send `messagesAfterPersist`,
 * apply, advance) and runs `checkInvariants()` after every input.
 */
class Cluster {
  readonly members = new Map<string, Member>();
  readonly ids: readonly string[];
  /** Every Ready, in order, with the replica that produced it. */
  readonly readies: { readonly id: string; readonly ready: Ready }[] = [];
  /** Per replica, the slots it applied, in order, with their values as JSON. */
  readonly applied = new Map<string, { slot: number; value: string }[]>();
  /** What the durable image held when each vote left: checked as it leaves. */
  durabilityViolations: string[] = [];
  private pool: Message[] = [];
  private readonly net: SeededRandom;
  private nowMs = 0;
  private nextSeq = 1;
  /** Stopped replicas: no ticks, and messages to them are lost. */
  readonly down = new Set<string>();
  invariantChecks = 0;

  constructor(private readonly config: ClusterOptions) {
    this.ids = config.ids ?? ["a", "b", "c"];
    this.net = new SeededRandom(config.seed * 7919 + 1);
    this.ids.forEach((id, index) => {
      const image = new DurableImage(ZERO_BALLOT);
      const random = new SeededRandom(config.seed * 100 + index);
      this.members.set(id, { replica: this.newReplica(id, random, image), image, random });
      this.applied.set(id, []);
    });
  }

  private newReplica(id: string, random: SeededRandom, image: DurableImage): Replica {
    const stored = image.toStoredState();
    return new Replica(
      {
        id,
        voters: this.ids,
        random,
        clock: { now: () => this.nowMs },
        ...(this.config.options === undefined ? {} : { options: this.config.options }),
        ...(this.config.bugs === undefined ? {} : { bugs: new Set(this.config.bugs) }),
      },
      { promised: stored.promised, records: stored.records, logStart: stored.logStart, appliedThrough: stored.logStart - 1 },
    );
  }

  member(id: string): Member {
    const member = this.members.get(id);
    if (member === undefined) throw new Error(`no replica ${id}`);
    return member;
  }

  leader(): Replica | undefined {
    for (const { replica } of this.members.values()) if (replica.status().role === "leader") return replica;
    return undefined;
  }

  private input(id: string, action: (replica: Replica) => void): void {
    const { replica } = this.member(id);
    action(replica);
    replica.checkInvariants();
    this.invariantChecks += 1;
    this.process(id);
  }

  /** Drains `id`'s Readies, in the contract's order. */
  process(id: string): void {
    const member = this.member(id);
    const replica = member.replica;
    while (replica.hasReady()) {
      const ready = replica.ready();
      this.readies.push({ id, ready });
      this.pool.push(...ready.messages);
      member.image.applyBatch(ready.persist);
      for (const vote of ready.messagesAfterPersist.filter(isVote)) this.checkDurable(member.image, vote);
      this.pool.push(...ready.messagesAfterPersist);
      const applied = this.applied.get(id) ?? [];
      for (const entry of ready.chosen) applied.push({ slot: entry.slot, value: JSON.stringify(entry.value) });
      replica.advance(ready);
      replica.checkInvariants();
      this.invariantChecks += 1;
    }
  }

  /** The state a vote vouches for must already be in the durable image. */
  private checkDurable(image: DurableImage, vote: Message): void {
    if (vote.type === "promise" && compareBallots(image.promised, vote.ballot) < 0) {
      this.durabilityViolations.push(`promise ${JSON.stringify(vote.ballot)} with durable promise ${JSON.stringify(image.promised)}`);
    }
    if (vote.type === "accepted") {
      for (const slot of vote.slots) {
        if (slot < image.logStart) continue;
        const record = image.records.get(slot);
        if (record === undefined || (!record.chosen && compareBallots(record.ballot, vote.ballot) < 0)) {
          this.durabilityViolations.push(`accepted slot ${slot} at ${JSON.stringify(vote.ballot)} not durable`);
        }
      }
    }
  }

  tickAll(): void {
    this.nowMs += 10;
    for (const id of this.ids) if (!this.down.has(id)) this.input(id, (replica) => replica.tick());
  }

  /** Delivers what is in the pool (losing some if configured), then what that produced, up to `rounds` times. */
  deliver(rounds = 10): void {
    for (let round = 0; round < rounds && this.pool.length > 0; round += 1) {
      const batch = this.pool;
      this.pool = [];
      for (const message of batch) {
        if (this.config.loss !== undefined && this.net.chance(this.config.loss)) continue;
        if (!this.members.has(message.to) || this.down.has(message.to)) continue;
        this.input(message.to, (replica) => replica.step(message));
      }
    }
  }

  proposeAtLeader(count = 1): number {
    const leader = this.leader();
    if (leader === undefined) return 0;
    for (let index = 0; index < count; index += 1) this.input(leader.id, (replica) => replica.propose(opCommand(this.nextSeq++)));
    return count;
  }

  /** The log time of the last batch each replica applied. */
  lastAppliedTime(id: string): number | undefined {
    const applied = this.applied.get(id) ?? [];
    for (let index = applied.length - 1; index >= 0; index -= 1) {
      const value = JSON.parse(applied[index]?.value ?? "{}") as { type?: string; time?: number };
      if (value.type === "batch") return value.time;
    }
    return undefined;
  }

  /** Restarts `id` from its durable image (everything not persisted is lost). */
  crash(id: string): void {
    const member = this.member(id);
    member.replica = this.newReplica(id, member.random, member.image);
    member.replica.checkInvariants();
    this.applied.set(id, []);
  }

  /** A workload: ticks, deliveries, proposals at the leader, and one follower crash. */
  run(rounds: number): void {
    for (let round = 0; round < rounds; round += 1) {
      this.tickAll();
      if (round % 2 === 0) this.proposeAtLeader(2);
      if (round === Math.floor(rounds / 2)) {
        const follower = this.ids.find((id) => this.member(id).replica.status().role !== "leader");
        if (follower !== undefined) this.crash(follower);
      }
      this.deliver();
    }
  }

  /** The whole output, as text: for comparing runs. */
  trace(): string[] {
    return this.readies.map(({ id, ready }) => `${id} ${JSON.stringify(ready)}`);
  }
}

describe("Replica: persist before send", () => {
  it("never puts a promise or a non-empty accepted in `messages`, only in `messagesAfterPersist`", () => {
    const cluster = new Cluster({ seed: 3, loss: 0.05 });
    cluster.run(120);
    let votesAfterPersist = 0;
    let promises = 0;
    let accepteds = 0;
    for (const { ready } of cluster.readies) {
      const early = ready.messages.filter(isVote);
      expect(early, "votes in `messages`").toEqual([]);
      for (const message of ready.messagesAfterPersist) {
        if (!isVote(message)) continue;
        votesAfterPersist += 1;
        if (message.type === "promise") promises += 1;
        else accepteds += 1;
      }
    }
    // The run really produced votes (the test is not vacuous), and each one's state was durable as it left.
    expect(promises).toBeGreaterThan(0);
    expect(accepteds).toBeGreaterThan(10);
    expect(votesAfterPersist).toBe(promises + accepteds);
    expect(cluster.durabilityViolations).toEqual([]);
    // Empty `accepted` (answers to `success`) vouch for nothing and may leave at once: not a violation.
  });

  it("the check catches the planted bug that replies before persisting", () => {
    const cluster = new Cluster({ seed: 3, bugs: ["reply-before-persist"] });
    cluster.run(40);
    const early = cluster.readies.flatMap(({ ready }) => ready.messages.filter(isVote));
    expect(early.length).toBeGreaterThan(0);
  });
});

describe("Replica: invariants and safety", () => {
  it("passes checkInvariants() after every input, and all replicas apply the same value in each slot", () => {
    const cluster = new Cluster({ seed: 11, loss: 0.1 });
    cluster.run(150);
    expect(cluster.invariantChecks).toBeGreaterThan(500);
    const bySlot = new Map<number, string>();
    let applies = 0;
    for (const [id, applied] of cluster.applied) {
      // Each replica applies contiguous slots (from its restart point on).
      for (let index = 1; index < applied.length; index += 1) {
        expect(applied[index]?.slot, `${id} applies in order`).toBe((applied[index - 1]?.slot ?? -2) + 1);
      }
      for (const { slot, value } of applied) {
        applies += 1;
        const known = bySlot.get(slot);
        if (known === undefined) bySlot.set(slot, value);
        else expect(value, `slot ${slot} on ${id}`).toBe(known);
      }
    }
    expect(applies).toBeGreaterThan(20);
  });

  it("a replica whose state machine vouches for more than its log starts after it, and asks storage to drop the rest", () => {
    // A snapshot fetched from a peer was saved, then the process died before the log was truncated:
    // the state machine reflects slots through 5, which are therefore chosen; the log holds less.
    const replica = new Replica(
      { id: "a", voters: ["a"], random: new SeededRandom(1), clock: { now: () => 0 } },
      { promised: ZERO_BALLOT, records: [{ slot: 2, ballot: ZERO_BALLOT, value: { type: "noop" }, chosen: false }], logStart: 0, appliedThrough: 5 },
    );
    replica.checkInvariants();
    expect(replica.status()).toMatchObject({ logStart: 6, firstUnchosen: 6, handedOutThrough: 5 });
    expect(replica.slotRecord(2)).toBeUndefined();
    const ready = replica.ready();
    expect(ready.persist.truncateBefore).toBe(6);
    expect(ready.chosen).toEqual([]);
  });
});

describe("Replica: the log clock", () => {
  // Sessions and leases expire by log time. Batches stamp it, and heartbeats
  // carry it between batches, so a leader elected after an idle spell
  // continues from the old leader's clock instead of from its last batch:
  // the idle time before a failover is not added to every lease.
  it("a new leader continues from the log time its predecessor's heartbeats carried, not from the last batch", () => {
    const cluster = new Cluster({ seed: 11 });
    for (let round = 0; round < 60 && cluster.leader() === undefined; round += 1) {
      cluster.tickAll();
      cluster.deliver();
    }
    const first = cluster.leader();
    expect(first).toBeDefined();
    cluster.proposeAtLeader(1);
    cluster.deliver();
    const before = cluster.lastAppliedTime(first?.id ?? "");
    expect(before).toBeDefined();
    // 10 s of idle log, heartbeats flowing (each tick is 10 ms).
    for (let round = 0; round < 1000; round += 1) {
      cluster.tickAll();
      cluster.deliver();
    }
    cluster.down.add(first?.id ?? "");
    let second: Replica | undefined;
    for (let round = 0; round < 200 && second === undefined; round += 1) {
      cluster.tickAll();
      cluster.deliver();
      second = cluster.leader();
      if (second?.id === first?.id) second = undefined;
    }
    expect(second).toBeDefined();
    cluster.proposeAtLeader(1);
    cluster.deliver();
    const after = cluster.lastAppliedTime(second?.id ?? "") ?? 0;
    // At least the idle 10 s minus one heartbeat interval went by in log time;
    // and no more than the real time that passed.
    expect(after - (before ?? 0)).toBeGreaterThanOrEqual(10_000 - 100);
    expect(after - (before ?? 0)).toBeLessThanOrEqual(10_000 + 200 * 10 + 100);
  });
});

describe("Replica: determinism", () => {
  it("gives the same sequence of outputs for the same seed", () => {
    const run = (seed: number): string[] => {
      const cluster = new Cluster({ seed, loss: 0.05 });
      cluster.run(80);
      return cluster.trace();
    };
    const first = run(5);
    expect(first.length).toBeGreaterThan(50);
    expect(run(5)).toEqual(first);
    // Another seed changes the election timeouts and the losses, hence the trace.
    expect(run(6)).not.toEqual(first);
  });
});

describe("Replica: a single-replica cluster", () => {
  function solo(options: Partial<ReplicaOptions> = {}) {
    let now = 0;
    const replica = new Replica({ id: "solo", voters: ["solo"], random: new SeededRandom(9), clock: { now: () => (now += 5) }, options });
    const image = new DurableImage(ZERO_BALLOT);
    const chosen: { slot: number; commands: number[] }[] = [];
    const readies: Ready[] = [];
    const drain = (): void => {
      while (replica.hasReady()) {
        const ready = replica.ready();
        readies.push(ready);
        image.applyBatch(ready.persist);
        for (const entry of ready.chosen) {
          chosen.push({ slot: entry.slot, commands: entry.value.type === "batch" ? entry.value.commands.map((c) => c.seq) : [] });
        }
        replica.advance(ready);
        replica.checkInvariants();
      }
    };
    const elect = (): void => {
      for (let ticks = 0; replica.status().role !== "leader"; ticks += 1) {
        if (ticks > 100) throw new Error("the single replica never became leader");
        replica.tick();
        drain();
      }
    };
    return { replica, image, chosen, readies, drain, elect };
  }

  it("elects itself and chooses commands in order", () => {
    const { replica, image, chosen, readies, drain, elect } = solo();
    expect(() => replica.propose(opCommand(1))).toThrow(NotLeaderError);
    elect();
    expect(replica.status()).toMatchObject({ role: "leader", leader: "solo" });
    expect(compareBallots(image.promised, ZERO_BALLOT)).toBeGreaterThan(0);
    // It sends nothing: there is nobody to send to.
    expect(readies.flatMap((ready) => [...ready.messages, ...ready.messagesAfterPersist])).toEqual([]);

    for (const seq of [1, 2, 3]) replica.propose(opCommand(seq));
    drain();
    replica.propose(opCommand(4));
    drain();
    expect(chosen.flatMap((entry) => entry.commands)).toEqual([1, 2, 3, 4]);
    expect(chosen.map((entry) => entry.slot)).toEqual(chosen.map((_, index) => index));
    expect(replica.status().firstUnchosen).toBe(chosen.length);
    // Chosen slots are durable, marked chosen.
    for (const { slot } of chosen) expect(image.records.get(slot)?.chosen).toBe(true);

    const readId = replica.read();
    for (let ticks = 0; ticks < 10 && !readies.some((ready) => ready.reads.some((read) => read.id === readId)); ticks += 1) {
      replica.tick();
      drain();
    }
    expect(readies.some((ready) => ready.reads.some((read) => read.id === readId))).toBe(true);
  });

  it("refuses proposals with OverloadedError beyond maxQueuedCommands, and takes them again once the queue drains", () => {
    const { replica, chosen, drain, elect } = solo({ maxQueuedCommands: 3 });
    elect();
    for (const seq of [1, 2, 3]) replica.propose(opCommand(seq));
    expect(replica.status().queuedCommands).toBe(3);
    let thrown: unknown;
    try {
      replica.propose(opCommand(4));
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(OverloadedError);
    expect(thrown).toMatchObject({ code: "OVERLOADED", retryable: true });
    expect(replica.status().queuedCommands).toBe(3);
    drain();
    expect(replica.status().queuedCommands).toBe(0);
    replica.propose(opCommand(4));
    drain();
    expect(chosen.flatMap((entry) => entry.commands)).toEqual([1, 2, 3, 4]);
  });

  it("compact() drops records below a slot and asks storage to truncate", () => {
    const { replica, image, chosen, drain, elect } = solo({ maxBatchCommands: 1 });
    elect();
    for (const seq of [1, 2, 3, 4, 5]) {
      replica.propose(opCommand(seq));
      drain();
    }
    expect(chosen.map((entry) => entry.slot)).toEqual([0, 1, 2, 3, 4]);
    expect(image.records.size).toBe(5);

    // Not past what was applied.
    expect(() => replica.compact(6)).toThrow(InvariantError);
    replica.compact(3);
    replica.checkInvariants();
    for (const slot of [0, 1, 2]) expect(replica.slotRecord(slot)).toBeUndefined();
    for (const slot of [3, 4]) expect(replica.slotRecord(slot)?.chosen).toBe(true);
    expect(replica.status().logStart).toBe(3);
    expect(replica.hasReady()).toBe(true);
    const ready = replica.ready();
    expect(ready.persist.truncateBefore).toBe(3);
    expect(ready.persist.records).toEqual([]);
    image.applyBatch(ready.persist);
    replica.advance(ready);
    expect([...image.records.keys()].sort()).toEqual([3, 4]);
    expect(image.logStart).toBe(3);

    // Compacting to or below logStart is a no-op that asks for nothing.
    replica.compact(2);
    replica.compact(3);
    expect(replica.hasReady()).toBe(false);

    // The log goes on from where it was.
    replica.propose(opCommand(6));
    drain();
    expect(chosen.map((entry) => entry.slot)).toEqual([0, 1, 2, 3, 4, 5]);

    // A replica restarted on the truncated image starts at logStart and still knows the rest.
    const stored = image.toStoredState();
    const restarted = new Replica(
      { id: "solo", voters: ["solo"], random: new SeededRandom(1), clock: { now: () => 0 } },
      { promised: stored.promised, records: stored.records, logStart: stored.logStart, appliedThrough: 5 },
    );
    restarted.checkInvariants();
    expect(restarted.status()).toMatchObject({ logStart: 3, firstUnchosen: 6, handedOutThrough: 5 });
  });
});
