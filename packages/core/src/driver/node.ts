import { type NodeId, ZERO_BALLOT } from "../ballot.js";
import { hashText } from "../bytes.js";
import type { Clock } from "../clock.js";
import type { ConfigChange, Configuration } from "../config.js";
import { NotLeaderError, StoppedError } from "../errors.js";
import { type MultiOpResult, type Outcome, type SnapshotHandle, StateMachineHost, collectChunks, snapshotChunks } from "../host.js";
import { MAX_SNAPSHOT_CHUNK_BYTES, type Message } from "../messages.js";
import { SeededRandom } from "../random.js";
import { DEFAULT_REPLICA_OPTIONS, type PersistBatch, type RecoveredState, Replica, type ReplicaStatus, type Ready } from "../replica.js";
import { BufferedSnapshot, snapshotData } from "../snapshot-stream.js";
import { type StoredSnapshot, isEmptyBatch } from "../storage.js";
import { ConsistencyChecks, type Divergence } from "./consistency.js";
import { persistPoints } from "./failure-points.js";
import { SlowWatch } from "./gray-failures.js";
import type { Listener, NodeConfig, NodeEvents } from "./node-types.js";
import { OwnSession, newSessionId } from "./own-session.js";
import { PendingRequests } from "./pending-requests.js";
import { SnapshotTransfer } from "./snapshot-transfer.js";
import { type Command, valueSize } from "../values.js";

const monotonicClock: Clock = { now: () => performance.now() };

/**
 * Runs a `Replica` over real storage, transport and time: the driver of the
 * sans-I/O core. It processes each `Ready` in order (send, persist, send
 * replies, apply, advance), ticks on a timer, answers proposals once their
 * slot is applied, and takes snapshots on a policy.
 */
export class SynodNode<Op = unknown, Test = unknown, Result = unknown, Query = unknown, QueryResult = unknown> {
  readonly id: NodeId;
  private replica: Replica | undefined;
  private readonly host: StateMachineHost<Op, Test, Result, Query, QueryResult>;
  /** Callers waiting for a command's outcome, a read, or a configuration change. */
  private readonly pending = new PendingRequests<Query, QueryResult>();
  private readonly listeners: { [K in keyof NodeEvents]: Set<Listener<NodeEvents[K]>> } = {
    leader: new Set(),
    role: new Set(),
    fatal: new Set(),
    applied: new Set(),
    snapshot: new Set(),
    config: new Set(),
    "step-down": new Set(),
    rebuild: new Set(),
    check: new Set(),
    divergence: new Set(),
  };
  private timer: unknown;
  /**
   * Chosen marks not yet handed to storage: they ride along with the next
   * persist (or go at the next tick), instead of costing a commit each.
   */
  private deferredMarks: number[] = [];
  private draining = false;
  private drainScheduled = false;
  private stopped = false;
  private fatalError: Error | undefined;
  /** How long the last few persists took, and the last few Readies' applying: the leader's watch on itself. */
  private readonly persistWatch: SlowWatch;
  private readonly applyWatch: SlowWatch;
  private readonly clock: Clock;
  private lastLeader: NodeId | undefined;
  private lastRole: ReplicaStatus["role"] = "follower";
  private lastConfigId = -1;
  /** This replica's own client session, for `propose` and `proposeMulti`. */
  private readonly ownSession: OwnSession;
  private slotsSinceSnapshot = 0;
  private bytesSinceSnapshot = 0;
  /** Snapshots to and from other replicas. */
  private readonly transfer: SnapshotTransfer;
  /** A snapshot fetched from another replica, installed by the drain loop between Readies. */
  private pendingInstall: { readonly snapshot: StoredSnapshot; readonly from: NodeId } | undefined;
  /** A snapshot to serve is being serialized (see `prepareServedSnapshot`). */
  private preparingServed = false;
  /** The snapshot being written, if any: `stop()` waits for it. */
  private snapshotting: Promise<void> | undefined;
  /** The state machine's state before anything was applied: what an in-place rebuild starts from. */
  private emptyState: Uint8Array | undefined;
  /** When the rebuild under way began (clock ms), if one is. */
  private rebuildStartedAt: number | undefined;
  /** The replica is being replaced by a rebuilding one (see `rebuild`). */
  private resetting = false;
  private readonly checks = new ConsistencyChecks();
  private lastCheckAt = 0;

  constructor(private readonly config: NodeConfig<Op, Test, Result, Query, QueryResult>) {
    this.id = config.id;
    this.clock = config.clock ?? monotonicClock;
    this.host = new StateMachineHost(config.stateMachine, {
      sessionTtlMs: config.sessionTtlMs ?? 60_000,
      voters: config.voters,
      ...(config.learners === undefined ? {} : { learners: config.learners }),
      ...(config.endpoints === undefined ? {} : { endpoints: config.endpoints }),
      ...(config.replica?.alpha === undefined ? {} : { alpha: config.replica.alpha }),
      ...(config.bugs === undefined ? {} : { bugs: config.bugs }),
    });
    this.ownSession = new OwnSession(config.id, (command) => this.submit(command), config.tickMs ?? 50);
    const electionMs = (config.replica?.electionTicks ?? DEFAULT_REPLICA_OPTIONS.electionTicks) * (config.tickMs ?? 50);
    this.persistWatch = new SlowWatch(config.maxPersistMs ?? electionMs);
    this.applyWatch = new SlowWatch(config.maxApplyMs ?? electionMs);
    this.transfer = new SnapshotTransfer(
      config.id,
      {
        send: (message) => config.transport.send(message),
        storage: config.storage,
        received: (snapshot, from) => {
          this.pendingInstall = { snapshot, from };
          this.scheduleDrain();
        },
        report: (progress) => this.emit("snapshot", progress),
        fail: (error) => this.fail(error),
      },
      Math.min(config.snapshotChunkBytes ?? 1024 * 1024, MAX_SNAPSHOT_CHUNK_BYTES),
      20,
    );
  }

  /** Loads storage, restores the latest snapshot, and starts ticking and listening. */
  async start(): Promise<void> {
    const stored = await this.config.storage.load();
    const machine = this.config.stateMachine;
    // The state machine as given holds nothing yet: kept, it is what a rebuild in place starts from.
    if (machine.checkpoint === undefined && machine.recover === undefined) this.emptyState = await collectChunks(snapshotChunks(machine.snapshot()()));
    // A state machine that keeps its state on disk may be further along than the last snapshot file.
    const durable = this.config.stateMachine.recover?.();
    let base = stored.snapshot?.handle;
    if (durable !== undefined && (base === undefined || durable.slot > base.slot)) {
      this.host.adopt(durable);
      base = durable;
    } else if (stored.snapshot !== undefined) {
      await this.host.restoreFrom(stored.snapshot.handle, snapshotData(stored.snapshot));
      this.transfer.offer(stored.snapshot);
    }
    this.transfer.keep(stored.incoming);
    this.replica = this.newReplica({
      promised: stored.promised,
      records: stored.records,
      logStart: stored.logStart,
      appliedThrough: this.host.appliedThrough,
      logTime: this.host.time,
      ...(base === undefined ? {} : { configs: { history: base.configs, through: base.slot } }),
      rebuilding: stored.rebuilding === true,
    });
    if (stored.rebuilding === true) this.beginRebuild("its storage was lost (corrupted or wiped)");
    this.lastCheckAt = this.clock.now();
    this.config.transport.onMessage((message) => this.onMessage(message));
    this.timer = setInterval(() => {
      this.input((replica) => replica.tick());
      this.transfer.tick();
      this.flushDeferredMarks();
      this.watchSelf();
      this.proposeCheckIfDue();
    }, this.config.tickMs ?? 50);
    this.scheduleDrain();
  }

  private newReplica(recovered: RecoveredState): Replica {
    return new Replica(
      {
        id: this.config.id,
        voters: this.config.voters,
        ...(this.config.learners === undefined ? {} : { learners: this.config.learners }),
        ...(this.config.endpoints === undefined ? {} : { endpoints: this.config.endpoints }),
        random: this.config.random ?? new SeededRandom(crypto.getRandomValues(new Uint32Array(1))[0] as number),
        clock: this.config.clock ?? monotonicClock,
        options: { leaseMs: (this.config.replica?.electionTicks ?? DEFAULT_REPLICA_OPTIONS.electionTicks) * (this.config.tickMs ?? 50), ...this.config.replica },
        ...(this.config.bugs === undefined ? {} : { bugs: this.config.bugs }),
      },
      recovered,
    );
  }

  /**
   * Throws away this replica's state and rebuilds it from the others (Paxos
   * Made Live §5.1), in place: fails what is pending (clients retry
   * elsewhere), resets storage (durably marked rebuilding, so a crash
   * meanwhile restarts it rebuilding) and the state machine, and starts a
   * replica that votes in nothing until it has caught up and seen an
   * instance begin after the rebuild did. Done on its own when a
   * consistency check finds this replica diverged. Needs a storage with
   * `reset` and a state machine without `checkpoint`; otherwise the node
   * stops with an error that says so.
   */
  async rebuild(reason: string): Promise<void> {
    if (this.stopped || this.fatalError !== undefined || this.resetting) return;
    const storage = this.config.storage;
    const empty = this.emptyState;
    if (storage.reset === undefined || empty === undefined) {
      this.fail(new Error(`this replica must be rebuilt (${reason}), but ${storage.reset === undefined ? "its storage cannot be reset" : "its state machine keeps its own state"}: stop it, empty its data directory and restart it as rebuilding`));
      return;
    }
    // The old replica stays for `status()` (answered as rebuilding) but takes no more input and no more drains.
    this.resetting = true;
    this.pending.failAll(new NotLeaderError(undefined));
    try {
      while (this.draining) await new Promise<void>((resolve) => setTimeout(() => resolve(), 1));
      await this.snapshotting;
      if (this.stopped) return;
      this.deferredMarks = [];
      this.pendingInstall = undefined;
      this.persistWatch.clear();
      this.applyWatch.clear();
      await storage.reset();
      this.transfer.reset();
      this.host.reset(empty);
      this.checks.clear();
      this.slotsSinceSnapshot = 0;
      this.bytesSinceSnapshot = 0;
      this.replica = this.newReplica({ promised: ZERO_BALLOT, records: [], logStart: 0, appliedThrough: -1, rebuilding: true });
      this.beginRebuild(reason);
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
    } finally {
      this.resetting = false;
    }
    this.scheduleDrain();
  }

  private beginRebuild(reason: string): void {
    this.rebuildStartedAt = this.clock.now();
    this.emit("rebuild", { phase: "started", reason });
  }

  /** On the leader, every `checkEveryMs`: a consistency check through the log. */
  private proposeCheckIfDue(): void {
    const every = this.config.checkEveryMs ?? 10_000;
    const now = this.clock.now();
    if (every <= 0 || now - this.lastCheckAt < every) return;
    if (this.resetting || this.replica?.status().role !== "leader") return;
    this.lastCheckAt = now;
    this.input((replica) => replica.proposeCheck());
  }

  /** This replica applied a check slot: its digest there goes to every other member, and counts here. */
  private digestAt(slot: number): void {
    const digest = hashText(this.host.digest());
    const config = this.host.config;
    for (const member of new Set([...config.voters, ...config.learners])) {
      if (member !== this.id) this.config.transport.send({ type: "digest", from: this.id, to: member, slot, digest });
    }
    this.emit("check", { slot, digest });
    this.judge(this.checks.report(slot, this.id, digest, config.voters));
  }

  private judge(divergences: readonly Divergence[]): void {
    for (const divergence of divergences) {
      const self = divergence.replica === this.id;
      this.emit("divergence", { ...divergence, self });
      if (self) void this.rebuild(`its state diverged from the others' at slot ${divergence.slot}`);
    }
  }

  /** Stops ticking, fails everything pending, and closes transport and storage. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer as never);
    this.pending.failAll(new StoppedError());
    await this.config.transport.close();
    while (this.draining) await new Promise<void>((resolve) => setTimeout(() => resolve(), 1));
    await this.snapshotting;
    if (this.deferredMarks.length > 0 && this.fatalError === undefined) {
      // Best effort: a clean restart then knows these slots chosen without asking.
      const chosen = this.deferredMarks;
      this.deferredMarks = [];
      await this.config.storage.persist({ promised: undefined, records: [], chosen, truncateBefore: undefined }).catch(() => undefined);
    }
    await this.config.storage.close();
  }

  /** Never throws once started, a rebuild in place included (status polls and metrics read it on timers). */
  status(): ReplicaStatus & { readonly appliedThrough: number } {
    const replica = this.replica;
    if (replica === undefined) throw new StoppedError("the node has not been started");
    const status = replica.status();
    const resetting = this.resetting ? { role: "follower" as const, leader: undefined, rebuilding: true, peers: [], leaseRemainingMs: undefined } : {};
    return { ...status, ...resetting, appliedThrough: this.host.appliedThrough };
  }

  /** The log time (ms) of the last batch applied: the clock leases and sessions expire by. */
  get logTime(): number {
    return this.host.time;
  }

  /**
   * While this replica leads, its log clock now: the log time its next batch
   * would carry, and from which a successor's clock continues. Unlike
   * `logTime` plus the time since it changed, it does not fall behind when
   * applying was late (a process stopped between proposing a batch and
   * applying it). Undefined unless it leads.
   */
  get leaderLogTime(): number | undefined {
    return this.resetting ? undefined : this.replica?.logClock();
  }

  on<K extends keyof NodeEvents>(event: K, listener: Listener<NodeEvents[K]>): () => void {
    this.listeners[event].add(listener);
    return () => this.listeners[event].delete(listener);
  }

  /**
   * Proposes one operation on this replica's own session and resolves with its
   * result once applied. Rejects with `NotLeaderError` on a follower. Retries
   * after a leadership change with the same sequence number, so it applies at
   * most once.
   */
  async propose(op: Op): Promise<Result> {
    const outcome = await this.ownSession.propose({ type: "op", op });
    return outcome as Result;
  }

  /** Proposes a MultiOp: if every guard holds apply `top`, else `fop`, atomically. */
  async proposeMulti(multi: { guard: readonly Test[]; top: readonly Op[]; fop: readonly Op[] }): Promise<MultiOpResult<Result>> {
    const outcome = await this.ownSession.propose({ type: "multi", guard: multi.guard, top: multi.top, fop: multi.fop });
    return outcome as MultiOpResult<Result>;
  }

  /**
   * Submits a client's command (its own session and sequence number) and
   * resolves with its outcome. A command already applied returns its cached
   * outcome. Used by client-facing servers.
   */
  submit(command: Command): Promise<Outcome> {
    return new Promise<Outcome>((resolve, reject) => {
      if (this.fatalError !== undefined) return reject(this.fatalError);
      if (this.stopped) return reject(new StoppedError());
      const cached = this.host.cachedOutcome(command.session, command.seq);
      if (cached !== undefined) return resolve(cached);
      // Already proposed and not yet answered: wait for the same outcome.
      if (this.pending.joinCommand(command, { resolve, reject })) return;
      try {
        this.requireReplica().propose(command);
      } catch (error) {
        return reject(error);
      }
      this.pending.awaitCommand(command, { resolve, reject });
      this.scheduleDrain();
    });
  }

  /**
   * Proposes a configuration change on the leader and resolves with the
   * configuration once its slot is applied; it governs from `slot + α`
   * (`status().configEffectiveSlot`). Rejects with `ConfigChangeError` when
   * refused (`CONFIG_CHANGED`: another configuration was chosen since
   * `expected`), `NotLeaderError` on a follower, and `EpochChangedError`
   * when leadership changed before it was decided: it may still be chosen,
   * so read the configuration again before retrying (the compare-and-set
   * keeps a retry from applying twice).
   */
  proposeConfig(change: ConfigChange): Promise<Configuration> {
    return new Promise<Configuration>((resolve, reject) => {
      if (this.fatalError !== undefined) return reject(this.fatalError);
      if (this.stopped) return reject(new StoppedError());
      const replica = this.requireReplica();
      const request = newSessionId(this.id);
      try {
        replica.proposeConfig(change, request);
      } catch (error) {
        return reject(error);
      }
      this.pending.awaitConfigChange(request, replica.status().ballot, { resolve, reject });
      this.scheduleDrain();
    });
  }

  /** Hands leadership to the voter `to` (see `Replica.transferLeadership`). */
  transferLeadership(to: NodeId): void {
    this.requireReplica().transferLeadership(to);
    this.scheduleDrain();
  }

  /** A linearizable read: confirmed with a quorum (read index), served after everything chosen before it is applied. */
  read(query: Query): Promise<QueryResult> {
    return new Promise<QueryResult>((resolve, reject) => {
      if (this.fatalError !== undefined) return reject(this.fatalError);
      if (this.stopped) return reject(new StoppedError());
      try {
        const id = this.requireReplica().read();
        this.pending.awaitRead(id, query, { resolve, reject });
      } catch (error) {
        return reject(error);
      }
      this.scheduleDrain();
    });
  }

  /**
   * A leader whose disk writes are slow past `maxPersistMs`, or whose
   * applying is slow past `maxApplyMs`, hands over to a follower: every
   * commit waits for the leader's own write, and every reply and read for
   * its applying, so a healthy follower leads faster.
   */
  private watchSelf(): void {
    if (this.resetting || this.replica?.status().role !== "leader") return;
    const slow: ["slow-disk" | "slow-apply", number | undefined][] = [
      ["slow-disk", this.persistWatch.takeSlow()],
      ["slow-apply", this.applyWatch.takeSlow()],
    ];
    for (const [reason, ms] of slow) {
      if (ms === undefined) continue;
      let handedTo: NodeId | undefined;
      this.input((leader) => {
        handedTo = leader.handOver();
      });
      this.emit("step-down", { reason, ms, handedTo });
      return;
    }
  }

  /** Makes this replica stop leading at once, if it leads (see `Replica.stepDown`). */
  stepDown(): void {
    this.input((replica) => replica.stepDown());
  }

  /** A local read of this replica's applied state: possibly stale, never blocked. */
  readLocal(query: Query): { readonly value: QueryResult; readonly appliedThrough: number } {
    return { value: this.host.query(query), appliedThrough: this.host.appliedThrough };
  }

  /**
   * Takes a snapshot now, saves it, and compacts the log behind it. A state
   * machine that keeps its state on disk (`checkpoint`) makes it durable
   * itself instead, and no snapshot file is written; its bytes are made
   * only when a replica too far behind asks for them.
   */
  async snapshot(): Promise<SnapshotHandle> {
    if (this.stopped) throw new StoppedError();
    const checkpoint = this.config.stateMachine.checkpoint;
    if (checkpoint !== undefined) {
      const handle = this.host.handle();
      await checkpoint.call(this.config.stateMachine, handle);
      if (this.stopped) throw new StoppedError("stopped while the checkpoint was written");
      this.compactBehind(handle.slot);
      return handle;
    }
    const { handle, chunks } = this.host.beginSnapshot();
    this.config.failureHooks?.at("before-snapshot");
    const snapshot = await this.config.storage.writeSnapshot(handle, this.untilStopped(chunks()));
    this.config.failureHooks?.at("after-snapshot");
    this.transfer.offer(snapshot);
    this.compactBehind(handle.slot);
    return handle;
  }

  /** Drops the log behind `slot`, keeping `snapshotTailSlots` of it for peers a little behind. */
  private compactBehind(slot: number): void {
    const keep = this.config.snapshotTailSlots ?? 1000;
    this.input((replica) => replica.compact(Math.max(0, slot + 1 - keep)));
  }

  /** Delivers a message from the transport. Messages are validated by the transport at its boundary. */
  private onMessage(message: Message): void {
    if (message.type === "snapshot-request") {
      if (this.stopped || this.fatalError !== undefined) return;
      // Nothing recent enough to serve (a state machine that checkpoints itself writes no snapshot files):
      // make one in memory for the replicas that ask; they try the others meanwhile, and come back.
      if (!this.transfer.canServe(message.minSlot) && this.host.appliedThrough >= message.minSlot) this.prepareServedSnapshot();
      this.transfer.onRequest(message);
      return;
    }
    if (message.type === "snapshot-chunk") {
      if (!this.stopped && this.fatalError === undefined) this.transfer.onChunk(message);
      return;
    }
    if (message.type === "digest") {
      if (!this.stopped && this.fatalError === undefined && !this.resetting) this.judge(this.checks.report(message.slot, message.from, message.digest));
      return;
    }
    this.input((replica) => replica.step(message));
  }

  /** Serializes the applied state into a snapshot to serve (kept in memory, not saved). */
  private prepareServedSnapshot(): void {
    if (this.preparingServed) return;
    this.preparingServed = true;
    const { handle, chunks } = this.host.beginSnapshot();
    BufferedSnapshot.of(handle, chunks())
      .then((snapshot) => this.transfer.offer(snapshot))
      .catch((error: unknown) => this.fail(error instanceof Error ? error : new Error(String(error))))
      .finally(() => {
        this.preparingServed = false;
      });
  }

  /**
   * Installs a snapshot fetched from another replica, in process: durable
   * first, then the state machine, then the replica (which drops the log
   * below it and goes on from the slot after).
   */
  private async installFetched(replica: Replica): Promise<void> {
    const pending = this.pendingInstall;
    this.pendingInstall = undefined;
    if (pending === undefined) return;
    const { snapshot, from } = pending;
    // Storage made it the latest snapshot already; one this replica went past since is no use to it.
    this.transfer.offer(snapshot);
    if (snapshot.handle.slot < replica.status().firstUnchosen) return;
    await this.host.restoreFrom(snapshot.handle, snapshotData(snapshot));
    if (this.stopped) return;
    replica.installSnapshot(snapshot.handle);
    this.slotsSinceSnapshot = 0;
    this.bytesSinceSnapshot = 0;
    this.emit("snapshot", { kind: "installed", from, slot: snapshot.handle.slot, size: snapshot.size });
  }

  /** Chunks of a snapshot being written, ending it (and the write) with an error if the node stops first. */
  private async *untilStopped(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const chunk of chunks) {
      if (this.stopped) throw new StoppedError("stopped while the snapshot was written; it was not saved");
      yield chunk;
    }
  }

  private emit<K extends keyof NodeEvents>(event: K, value: NodeEvents[K]): void {
    for (const listener of this.listeners[event]) listener(value);
  }

  private input(action: (replica: Replica) => void): void {
    if (this.stopped || this.fatalError !== undefined || this.replica === undefined || this.resetting) return;
    try {
      action(this.replica);
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    this.scheduleDrain();
  }

  private scheduleDrain(): void {
    if (this.drainScheduled || this.draining) return;
    this.drainScheduled = true;
    queueMicrotask(() => {
      this.drainScheduled = false;
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    const replica = this.replica;
    if (this.draining || replica === undefined || this.resetting) return;
    this.draining = true;
    try {
      for (;;) {
        if (this.stopped || this.fatalError !== undefined || this.resetting) break;
        if (this.pendingInstall !== undefined) await this.installFetched(replica);
        if (!replica.hasReady()) break;
        await this.handleReady(replica, replica.ready());
      }
      this.emitChanges(replica);
      const wanted = replica.wantsSnapshot;
      if (wanted !== undefined && this.pendingInstall === undefined) {
        // The leader is busiest: ask the other voters first, then the leader, then the learners.
        const config = replica.status().config;
        this.transfer.want(wanted.minSlot, [...config.voters.filter((id) => id !== wanted.from), wanted.from, ...config.learners]);
      }
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
    } finally {
      this.draining = false;
    }
  }

  private async handleReady(replica: Replica, ready: Ready): Promise<void> {
    const transport = this.config.transport;
    for (const message of ready.messages) transport.send(message);
    // Chosen marks vouch for nothing another replica relies on (lost in a
    // crash, they are learned again), so a Ready with nothing else to persist
    // leaves them for the next persist instead of paying a commit of its own.
    let persisting: Promise<void> | undefined;
    const hooks = this.config.failureHooks;
    const points = hooks === undefined ? undefined : persistPoints(ready.persist);
    if (onlyChosenMarks(ready)) {
      this.deferredMarks.push(...ready.persist.chosen);
    } else if (!isEmptyBatch(ready.persist)) {
      for (const point of points?.before ?? []) hooks?.at(point);
      const startedAt = this.clock.now();
      // Timed by itself, not with the applying that overlaps it: the disk watch judges the disk.
      persisting = this.config.storage.persist(this.withDeferredMarks(ready.persist)).then(() => this.persistWatch.note(this.clock.now() - startedAt));
    }
    // Applying overlaps the disk write: what is chosen is durable on a quorum
    // already, and never waits for this Ready's own persist.
    try {
      const applyingFrom = this.clock.now();
      this.applyReady(ready);
      if (ready.chosen.length > 0) this.applyWatch.note(this.clock.now() - applyingFrom);
    } catch (error) {
      await persisting?.catch(() => undefined);
      throw error;
    }
    await persisting;
    for (const point of points?.after ?? []) hooks?.at(point);
    if (this.stopped) return;
    for (const message of ready.messagesAfterPersist) transport.send(message);
    replica.advance(ready);
    this.maybeSnapshot();
  }

  private withDeferredMarks(batch: PersistBatch): PersistBatch {
    if (this.deferredMarks.length === 0) return batch;
    const chosen = [...this.deferredMarks, ...batch.chosen];
    this.deferredMarks = [];
    return { ...batch, chosen };
  }

  /** Writes chosen marks that found no persist to ride with (an idle moment). */
  private flushDeferredMarks(): void {
    if (this.deferredMarks.length === 0 || this.draining || this.stopped || this.fatalError !== undefined) return;
    const chosen = this.deferredMarks;
    this.deferredMarks = [];
    this.config.storage.persist({ promised: undefined, records: [], chosen, truncateBefore: undefined }).catch((error: unknown) => this.fail(error instanceof Error ? error : new Error(String(error))));
  }

  /** Applies a Ready's chosen slots and answers their waiters, serves its reads, fails its aborted commands. */
  private applyReady(ready: Ready): void {
    for (const entry of ready.chosen) {
      for (const applied of this.host.apply(entry)) this.pending.commandApplied(applied.command, applied.outcome);
      this.slotsSinceSnapshot += 1;
      this.bytesSinceSnapshot += valueSize(entry.value);
      if (entry.value.type === "check") this.digestAt(entry.slot);
    }
    for (const outcome of this.host.takeConfigOutcomes()) this.pending.configApplied(outcome);
    if (ready.chosen.length > 0) for (const listener of this.listeners.applied) listener(this.host.appliedThrough);
    for (const read of ready.reads) this.pending.readConfirmed(read.id, (query) => this.host.query(query));
    for (const failed of ready.failedReads) this.pending.readFailed(failed.id, failed.error);
    for (const aborted of ready.aborted) this.pending.commandAborted(aborted.command, aborted.error);
  }

  private maybeSnapshot(): void {
    if (this.snapshotting !== undefined) return;
    const everySlots = this.config.snapshotEverySlots ?? 10_000;
    const everyBytes = this.config.snapshotEveryBytes ?? 64 * 1024 * 1024;
    const due = (everySlots > 0 && this.slotsSinceSnapshot >= everySlots) || (everyBytes > 0 && this.bytesSinceSnapshot >= everyBytes);
    if (!due) return;
    this.slotsSinceSnapshot = 0;
    this.bytesSinceSnapshot = 0;
    this.snapshotting = this.snapshot()
      .then(
        () => undefined,
        (error: unknown) => {
          if (!this.stopped) this.fail(error instanceof Error ? error : new Error(String(error)));
        },
      )
      .finally(() => {
        this.snapshotting = undefined;
        // Slots applied while it was written are due too, even if no Ready comes to ask.
        if (!this.stopped && this.fatalError === undefined) this.maybeSnapshot();
      });
  }

  private emitChanges(replica: Replica): void {
    const status = replica.status();
    if (this.rebuildStartedAt !== undefined && !status.rebuilding) {
      const ms = this.clock.now() - this.rebuildStartedAt;
      this.rebuildStartedAt = undefined;
      this.emit("rebuild", { phase: "finished", ms });
    }
    this.pending.forgetOtherLeaderships(status);
    if (status.leader !== this.lastLeader) {
      this.lastLeader = status.leader;
      for (const listener of this.listeners.leader) listener(status.leader);
    }
    if (status.config.id !== this.lastConfigId) {
      this.lastConfigId = status.config.id;
      this.emit("config", status.config);
    }
    if (status.role !== this.lastRole) {
      this.lastRole = status.role;
      // A new leader is judged on its own leading, not on what it did as a follower (catching up, say).
      if (status.role === "leader") {
        this.persistWatch.clear();
        this.applyWatch.clear();
      }
      for (const listener of this.listeners.role) listener(status.role);
    }
  }

  private fail(error: Error): void {
    if (this.fatalError !== undefined) return;
    this.fatalError = error;
    if (this.timer !== undefined) clearInterval(this.timer as never);
    this.pending.failAll(error);
    for (const listener of this.listeners.fatal) listener(error);
  }

  private requireReplica(): Replica {
    // Rebuilding in place: for a moment no replica takes requests, as on a follower that knows no leader.
    if (this.resetting) throw new NotLeaderError(undefined);
    if (this.replica === undefined) throw new StoppedError("the node has not been started");
    return this.replica;
  }
}

/** A Ready whose persist holds nothing but chosen marks, and nothing waits for it. */
function onlyChosenMarks(ready: Ready): boolean {
  const batch = ready.persist;
  return (
    batch.chosen.length > 0 &&
    batch.records.length === 0 &&
    batch.promised === undefined &&
    batch.truncateBefore === undefined &&
    ready.messagesAfterPersist.length === 0 &&
    ready.selfAfterPersist.length === 0
  );
}
