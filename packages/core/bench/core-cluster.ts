/**
 * A 3-replica cluster driven synchronously in one loop: no timers, no
 * promises. Each `Ready` is processed as its doc comment prescribes:
 * `messages` go into an in-memory FIFO, `persist` is applied to a
 * `DurableImage` at once, then `messagesAfterPersist` follow, chosen entries
 * are applied by the replica's `StateMachineHost`, and `advance(ready)`.
 */
import { ZERO_BALLOT } from "../src/ballot.js";
import { type AppliedCommand, StateMachineHost } from "../src/host.js";
import type { Message } from "../src/messages.js";
import { SeededRandom } from "../src/random.js";
import { type Ready, Replica, type ReplicaOptions } from "../src/replica.js";
import { DurableImage, isEmptyBatch } from "../src/storage.js";
import type { Command } from "../src/values.js";
import { KvMachine, type PutOp } from "./kv.js";

export interface CoreNode {
  readonly id: string;
  readonly replica: Replica;
  readonly host: StateMachineHost<PutOp, never, number, string, string | undefined>;
  readonly machine: KvMachine;
  readonly image: DurableImage;
}

/** Optional accounting (costly: only for an untimed pass). */
export interface Accounting {
  /** Messages delivered, by type. */
  readonly messages: Map<string, number>;
  /** JSON bytes of the messages delivered, by type. */
  readonly messageBytes: Map<string, number>;
  /** JSON bytes of the slot records persisted, all replicas. */
  persistBytes: number;
  persistRecords: number;
}

export class CoreCluster {
  readonly nodes: readonly CoreNode[];
  private readonly byId = new Map<string, CoreNode>();
  private queue: Message[] = [];
  private nowMs = 0;
  /** Messages delivered (all types). */
  delivered = 0;
  /** Delivery rounds run. */
  rounds = 0;
  ticks = 0;
  /** Called with the commands the leader's host applied. */
  onLeaderApplied: ((applied: readonly AppliedCommand[]) => void) | undefined;
  leaderId: string | undefined;
  accounting: Accounting | undefined;
  /**
   * Log compaction as `SynodNode` does it by default: every `compactEverySlots`
   * applied slots, drop all but the last `compactTailSlots` applied ones
   * (the application snapshot itself is not taken here). 0 disables.
   */
  compactEverySlots = 10_000;
  compactTailSlots = 1_000;
  private readonly compactedAt = new Map<string, number>();

  constructor(options: Partial<ReplicaOptions>, seed: number, ids: readonly string[] = ["a", "b", "c"]) {
    const clock = { now: () => this.nowMs };
    this.nodes = ids.map((id, index) => {
      const machine = new KvMachine();
      const node: CoreNode = {
        id,
        replica: new Replica({ id, voters: ids, random: new SeededRandom(seed * 100 + index), clock, options }),
        host: new StateMachineHost(machine, { sessionTtlMs: 60_000, voters: ids }),
        machine,
        image: new DurableImage(ZERO_BALLOT),
      };
      this.byId.set(id, node);
      return node;
    });
  }

  get leader(): CoreNode {
    const node = this.leaderId === undefined ? undefined : this.byId.get(this.leaderId);
    if (node === undefined) throw new Error("no leader");
    return node;
  }

  /** Advances logical time by one tick (50 ms of log clock) on every replica. */
  tickAll(): void {
    this.nowMs += 50;
    this.ticks += 1;
    for (const node of this.nodes) node.replica.tick();
  }

  /** Drains every replica's Readies; true when any had one. */
  processAll(): boolean {
    let any = false;
    for (const node of this.nodes) {
      while (node.replica.hasReady()) {
        any = true;
        this.handleReady(node, node.replica.ready());
      }
    }
    return any;
  }

  /** Delivers every message in flight (those sent while delivering wait for the next round). */
  deliverAll(): number {
    const batch = this.queue;
    if (batch.length === 0) return 0;
    this.queue = [];
    const accounting = this.accounting;
    for (const message of batch) {
      if (accounting !== undefined) {
        accounting.messages.set(message.type, (accounting.messages.get(message.type) ?? 0) + 1);
        accounting.messageBytes.set(message.type, (accounting.messageBytes.get(message.type) ?? 0) + JSON.stringify(message).length);
      }
      const node = this.byId.get(message.to);
      if (node !== undefined) node.replica.step(message);
    }
    this.delivered += batch.length;
    return batch.length;
  }

  /** One round: process every replica, then deliver what they sent. */
  round(): void {
    this.processAll();
    this.deliverAll();
    this.rounds += 1;
  }

  /** Rounds until no replica has output and nothing is in flight. */
  settle(maxRounds = 1000): void {
    for (let round = 0; ; round += 1) {
      if (round === maxRounds) throw new Error(`cluster did not settle in ${maxRounds} rounds`);
      const busy = this.processAll();
      if (this.deliverAll() === 0 && !busy) return;
    }
  }

  /** Ticks the first replica (settling in between) until it leads. */
  elect(maxTicks = 200): CoreNode {
    const candidate = this.nodes[0];
    if (candidate === undefined) throw new Error("empty cluster");
    for (let tick = 0; candidate.replica.status().role !== "leader"; tick += 1) {
      if (tick === maxTicks) throw new Error(`${candidate.id} not leader after ${maxTicks} ticks`);
      this.nowMs += 50;
      candidate.replica.tick();
      this.settle();
    }
    this.leaderId = candidate.id;
    return candidate;
  }

  /** Proposes one command at the leader and runs until the leader applied it. */
  proposeAndWait(command: Command, maxRounds = 1000): void {
    const leader = this.leader;
    leader.replica.propose(command);
    const slotBefore = leader.host.appliedThrough;
    for (let round = 0; ; round += 1) {
      if (round === maxRounds) throw new Error("command not applied");
      this.round();
      if (leader.host.appliedThrough > slotBefore && leader.host.cachedOutcome(command.session, command.seq) !== undefined) return;
    }
  }

  private handleReady(node: CoreNode, ready: Ready): void {
    for (const message of ready.messages) this.queue.push(message);
    if (!isEmptyBatch(ready.persist)) {
      node.image.applyBatch(ready.persist);
      const accounting = this.accounting;
      if (accounting !== undefined) {
        accounting.persistRecords += ready.persist.records.length;
        for (const record of ready.persist.records) accounting.persistBytes += JSON.stringify(record).length;
      }
    }
    for (const message of ready.messagesAfterPersist) this.queue.push(message);
    const isLeader = node.id === this.leaderId;
    for (const entry of ready.chosen) {
      const applied = node.host.apply(entry);
      if (isLeader && applied.length > 0) this.onLeaderApplied?.(applied);
    }
    if (ready.aborted.length > 0) throw new Error(`${node.id}: ${ready.aborted.length} commands aborted: ${ready.aborted[0]?.error.message}`);
    node.replica.advance(ready);
    if (this.compactEverySlots > 0) {
      const applied = node.host.appliedThrough;
      if (applied - (this.compactedAt.get(node.id) ?? 0) >= this.compactEverySlots) {
        this.compactedAt.set(node.id, applied);
        node.replica.compact(Math.max(0, applied + 1 - this.compactTailSlots));
      }
    }
  }
}
