import {
  type Ballot,
  type ChosenEntry,
  DurableImage,
  type Snapshot,
  type Message,
  type PersistBatch,
  type PlantedBug,
  type Ready,
  Replica,
  type ReplicaOptions,
  SeededRandom,
  StateMachineHost,
  ZERO_BALLOT,
  compareBallots,
  isEmptyBatch,
} from "@synod/core";
import { KvMachine, type KvOp, type KvQuery, type KvTest } from "./kv-machine.js";

/** One replica of the simulated cluster: its process (replica + host) and its disk, which outlives crashes. */
export class SimNode {
  readonly id: string;
  /** What survives a crash: everything synced. */
  readonly durable = new DurableImage<Snapshot>(ZERO_BALLOT);
  up = true;
  /** Bumped at every crash so that events of a dead incarnation are ignored. */
  incarnation = 0;
  replica: Replica;
  host: StateMachineHost<KvOp, KvTest, string | null, KvQuery, string>;
  /** The Ready whose persist is in flight (unsynced) and what it writes. */
  pending: { readonly ready: Ready; readonly batch: PersistBatch } | undefined;
  /** While paused, every event for this node waits until this time. */
  pausedUntil = 0;
  /** Disk latency is multiplied by this while a stall fault holds. */
  diskStallUntil = 0;
  /** The clock of this node runs at `1 + drift` times simulated time. */
  readonly drift: number;
  /** Highest ballot this node vouched for in a promise sent to another node. */
  vouchedPromise: Ballot = ZERO_BALLOT;
  /** Per slot, the highest ballot it told another node it accepted. */
  readonly vouchedAccepts = new Map<number, Ballot>();
  appliedSinceSnapshot = 0;
  /** A snapshot fetch is scheduled. */
  fetching = false;

  constructor(
    id: string,
    private readonly voters: readonly string[],
    private readonly seed: number,
    drift: number,
    private readonly options: Partial<ReplicaOptions>,
    private readonly bugs: ReadonlySet<PlantedBug>,
    private readonly now: () => number,
  ) {
    this.id = id;
    this.drift = drift;
    this.host = this.newHost();
    this.replica = this.newReplica(-1);
  }

  /** The node's local clock: simulated time scaled by its drift. */
  clockNow(): number {
    return this.now() * (1 + this.drift);
  }

  /** Kills the process: unsynced writes are lost, or (torn) a prefix of them lands. */
  crash(tornFraction: number | undefined): void {
    this.up = false;
    this.incarnation += 1;
    const pending = this.pending;
    this.pending = undefined;
    if (pending !== undefined && tornFraction !== undefined) {
      const kept = Math.floor(pending.batch.records.length * tornFraction);
      this.durable.applyBatch({ promised: undefined, records: pending.batch.records.slice(0, kept), chosen: [], truncateBefore: undefined });
    }
  }

  /** Loses the disk (corrupted or wiped): the next start rebuilds, and it vouches for nothing it said before. */
  wipe(): void {
    this.durable.reset(ZERO_BALLOT);
    this.vouchedPromise = ZERO_BALLOT;
    this.vouchedAccepts.clear();
  }

  /** Starts a new process on the same disk. */
  restart(): void {
    this.up = true;
    this.fetching = false;
    this.incarnation += 1;
    this.host = this.newHost();
    const snapshot = this.durable.snapshot;
    if (snapshot !== undefined) this.host.restore(snapshot);
    this.replica = this.newReplica(this.host.appliedThrough);
    this.appliedSinceSnapshot = 0;
  }

  /** Called after a persist completes: the batch is now durable. */
  sync(): Ready | undefined {
    const pending = this.pending;
    if (pending === undefined) return undefined;
    this.pending = undefined;
    this.durable.applyBatch(pending.batch);
    return pending.ready;
  }

  /** Records what a message vouches for, once it leaves this node (checked after a restart). */
  noteSent(message: Message): void {
    if (message.type === "promise" && compareBallots(message.ballot, this.vouchedPromise) > 0) this.vouchedPromise = message.ballot;
    if (message.type === "accepted") {
      for (const slot of message.slots) {
        const known = this.vouchedAccepts.get(slot);
        if (known === undefined || compareBallots(message.ballot, known) > 0) this.vouchedAccepts.set(slot, message.ballot);
      }
    }
  }

  /** After a restart: every promise and accept this node vouched for must have survived. */
  checkVouchedSurvived(): string | undefined {
    const status = this.replica.status();
    if (compareBallots(status.promised, this.vouchedPromise) < 0) {
      return `${this.id} restarted with promise ${fmt(status.promised)} below the ${fmt(this.vouchedPromise)} it had promised`;
    }
    for (const [slot, ballot] of this.vouchedAccepts) {
      if (slot < status.logStart) continue;
      const record = this.replica.slotRecord(slot);
      if (record === undefined || (!record.chosen && compareBallots(record.ballot, ballot) < 0)) {
        return `${this.id} restarted without the accept of slot ${slot} at ${fmt(ballot)} it had acknowledged`;
      }
    }
    return undefined;
  }

  hasPersistInFlight(): boolean {
    return this.pending !== undefined;
  }

  startPersist(ready: Ready): boolean {
    if (isEmptyBatch(ready.persist)) return false;
    this.pending = { ready, batch: ready.persist };
    return true;
  }

  apply(entry: ChosenEntry) {
    this.appliedSinceSnapshot += 1;
    return this.host.apply(entry);
  }

  private newHost(): StateMachineHost<KvOp, KvTest, string | null, KvQuery, string> {
    return new StateMachineHost(new KvMachine(), {
      sessionTtlMs: 1e12,
      voters: this.voters,
      ...(this.options.alpha === undefined ? {} : { alpha: this.options.alpha }),
      bugs: this.bugs,
    });
  }

  private newReplica(appliedThrough: number): Replica {
    const stored = this.durable.toStoredState();
    const snapshot = this.durable.snapshot;
    return new Replica(
      {
        id: this.id,
        voters: this.voters,
        random: new SeededRandom((this.seed ^ Math.imul(this.incarnation + 1, 0x9e3779b1)) >>> 0),
        clock: { now: () => this.clockNow() },
        options: this.options,
        bugs: this.bugs,
      },
      {
        promised: stored.promised,
        records: stored.records,
        logStart: stored.logStart,
        appliedThrough: Math.max(appliedThrough, stored.logStart - 1),
        rebuilding: stored.rebuilding === true,
        ...(snapshot === undefined ? {} : { configs: { history: snapshot.handle.configs, through: snapshot.handle.slot } }),
      },
    );
  }
}

function fmt(ballot: Ballot): string {
  return `${ballot.round}.${ballot.node}`;
}
