import { type Ballot, type NodeId, ZERO_BALLOT, ballotsEqual, compareBallots, formatBallot, maxBallot, nextBallot } from "./ballot.js";
import { NO_BUGS, type PlantedBugs } from "./bugs.js";
import type { Clock } from "./clock.js";
import { type ConfigChange, ConfigLog, type Configuration, configChangeProblem, isVoter, keptEndpoints, quorumOfEach } from "./config.js";
import { ConfigChangeError, EpochChangedError, NotLeaderError, OverloadedError, invariant } from "./errors.js";
import type {
  Accept,
  AcceptEntry,
  Accepted,
  Heartbeat,
  HeartbeatReply,
  Message,
  PreVote,
  PreVoteReply,
  Prepare,
  Promise as PromiseMessage,
  Reject,
  Success,
  NeedSnapshot,
  TakeOver,
} from "./messages.js";
import { GrantedLease } from "./lease.js";
import { Leadership } from "./leadership.js";
import { PhaseOne } from "./phase-one.js";
import type { PeerProgress } from "./progress.js";
import { hasQuorum } from "./quorum.js";
import type { Random } from "./random.js";
import { SlotLog, type SlotState } from "./slot-log.js";
import { ReadyBuilder } from "./ready-builder.js";
import {
  DEFAULT_REPLICA_OPTIONS,
  EMPTY_STATE,
  type Ready,
  type RecoveredState,
  type ReplicaConfig,
  type ReplicaOptions,
  type ReplicaStatus,
  type Role,
} from "./replica-types.js";
import type { SnapshotHandle } from "./host.js";
import { type ChosenEntry, type Command, type SlotRecord, type Value, valueSize } from "./values.js";

export * from "./replica-types.js";


/**
 * A Multi-Paxos replica: proposer, acceptor and learner in one synchronous,
 * deterministic state machine. No timers, no clock reads except the injected
 * one, no randomness except the injected PRNG, no I/O: inputs arrive through
 * `step`, `tick`, `propose` and `read`; outputs leave through `ready`.
 */
export class Replica {
  readonly id: NodeId;
  /** The configurations that govern slots from `firstUnchosen` on. */
  private configs: ConfigLog;
  private readonly options: ReplicaOptions;
  private readonly random: Random;
  private readonly clock: Clock;
  private readonly bugs: PlantedBugs;

  // Acceptor state (durable).
  private promised: Ballot;
  private readonly log: SlotLog;

  // Learner state.
  private firstUnchosen: number;
  private handedOutThrough: number;
  /** Highest log time seen in any batch; a new leader's log clock continues from it. */
  private maxLogTime = 0;
  /** The last leader ballot and `firstUnchosen` heard, to mark slots chosen once gaps fill. */
  private knownLeaderBallot: Ballot = ZERO_BALLOT;
  private knownLeaderFirstUnchosen = 0;

  // Roles.
  private role: Role = "follower";
  private leaderId: NodeId | undefined;
  private currentTick = 0;
  private electionElapsed = 0;
  /** The master lease this acceptor granted. */
  private readonly grantedLease: GrantedLease;
  private leaseReads = 0;
  private electionTimeout: number;
  private heartbeatElapsed = 0;
  /** The highest ballot seen in any prepare, accept, reject or heartbeat: a new candidacy goes above it. */
  private maxBallotSeen: Ballot;
  private preVote: { readonly ballot: Ballot; readonly granted: Set<NodeId> } | undefined;
  private candidate: PhaseOne | undefined;
  private leader: Leadership | undefined;
  private nextReadId = 1;
  /**
   * Set while this replica rebuilds state it lost (see
   * `RecoveredState.rebuilding`): the probe it sends the leader, and the
   * first slot the leader proposed after hearing it, once told.
   */
  private rebuild: { readonly probe: number; horizon: number | undefined } | undefined;
  /** The leader said the slots this replica lacks are compacted away: the driver fetches a snapshot. */
  private snapshotWanted: { readonly from: NodeId; readonly minSlot: number } | undefined;

  // Output accumulated for the next Ready.
  private readonly output: ReadyBuilder;

  constructor(config: ReplicaConfig, recovered: RecoveredState = EMPTY_STATE) {
    this.id = config.id;
    this.output = new ReadyBuilder(config.id);
    this.options = { ...DEFAULT_REPLICA_OPTIONS, ...config.options };
    this.bugs = config.bugs ?? NO_BUGS;
    // Planted bug: configurations take effect at the next slot while the leader still keeps α slots in flight.
    const alpha = this.bugs.has("config-without-alpha") ? 1 : this.options.alpha;
    this.configs =
      recovered.configs === undefined
        ? ConfigLog.bootstrap(alpha, config.voters, config.learners ?? [], config.endpoints)
        : new ConfigLog(alpha, recovered.configs.history, recovered.configs.through);
    invariant(this.options.heartbeatTicks < this.options.electionTicks, "heartbeatTicks must be below electionTicks");
    this.random = config.random;
    this.clock = config.clock;
    this.promised = this.bugs.has("forget-promise-on-restart") ? ZERO_BALLOT : recovered.promised;
    this.log = SlotLog.recover(recovered.logStart, recovered.records);
    this.maxLogTime = recovered.logTime ?? 0;
    for (const record of recovered.records) this.noteValueTime(record.value);
    // Accepting at a ballot implies promising it: should a torn write have
    // kept a record but lost the promise, the promise is raised here.
    this.promised = maxBallot(this.promised, this.log.maxAcceptedBallot);
    this.firstUnchosen = this.log.logStart;
    this.advanceFirstUnchosen();
    this.handedOutThrough = Math.max(recovered.appliedThrough, this.log.logStart - 1);
    // The state machine vouches for more than the log holds (a snapshot installed from a peer before the log
    // was truncated, or an application that keeps its own state): those slots are chosen; the log starts after them.
    if (this.handedOutThrough >= this.firstUnchosen) this.skipTo(this.handedOutThrough + 1);
    this.maxBallotSeen = this.promised;
    this.electionTimeout = this.randomElectionTimeout();
    if (recovered.rebuilding === true && !this.bugs.has("rebuild-votes-at-once")) this.rebuild = { probe: this.random.integer(0xffffffff), horizon: undefined };
    // It may have granted a lease before it stopped, and it does not remember to whom: honour it for everyone.
    this.grantedLease = new GrantedLease(this.options.leaseMs, this.clock, !this.bugs.has("lease-not-honoured"));
    if (compareBallots(this.promised, ZERO_BALLOT) > 0 || this.rebuild !== undefined) this.grantedLease.grantToAnyone();
  }

  // ---------------------------------------------------------------- inputs

  /** Advances logical time by one tick: elections and heartbeats. */
  tick(): void {
    this.currentTick += 1;
    if (this.role === "leader") {
      this.tickLeader();
      return;
    }
    this.electionElapsed += 1;
    // A replica outside the configuration waits three timeouts, so that members go first; one that knows
    // of no voters at all (it joined and has not learned the configuration) has no one to ask.
    // A replica whose own acceptor is bound by a lease to another (or, just restarted, to anyone) cannot promise itself: it waits.
    // One that is rebuilding votes for no one, itself included.
    const standing = this.configs.latest.voters.length > 0 && !this.grantedLease.refuses(this.id) && this.rebuild === undefined;
    if (this.electionElapsed >= this.electionTimeout * (this.isMember() ? 1 : 3) && standing) this.startPreVote();
  }

  /** Handles one message from another replica (or this one, via `advance`). */
  step(message: Message): void {
    if (message.to !== this.id) return;
    switch (message.type) {
      case "pre-vote":
        return this.onPreVote(message);
      case "pre-vote-reply":
        return this.onPreVoteReply(message);
      case "prepare":
        return this.onPrepare(message);
      case "promise":
        return this.onPromise(message);
      case "accept":
        return this.onAccept(message);
      case "accepted":
        return this.onAccepted(message);
      case "reject":
        return this.onReject(message);
      case "success":
        return this.onSuccess(message);
      case "heartbeat":
        return this.onHeartbeat(message);
      case "heartbeat-reply":
        return this.onHeartbeatReply(message);
      case "take-over":
        return this.onTakeOver(message);
      case "need-snapshot":
        return this.onNeedSnapshot(message);
      case "snapshot-request":
      case "snapshot-chunk":
      case "digest":
        // Snapshot transfer is the driver's: bytes, not protocol state.
        return;
      default: {
        const unreachable: never = message;
        throw new Error(`unknown message ${JSON.stringify(unreachable)}`);
      }
    }
  }

  /**
   * Queues a client command for the next slot. Throws `NotLeaderError` on a
   * replica that is not the leader and `OverloadedError` when the queue is full.
   */
  propose(command: Command): void {
    const leader = this.leader;
    if (this.role !== "leader" || leader === undefined) throw new NotLeaderError(this.leaderId);
    if (leader.queue.size >= this.options.maxQueuedCommands) {
      throw new OverloadedError(`${this.options.maxQueuedCommands} commands queued`);
    }
    leader.queue.push(command);
  }

  /**
   * Queues a configuration change for a slot of its own. `request` names it,
   * to find its outcome when applied. Throws `NotLeaderError` on a replica
   * that is not the leader, and `ConfigChangeError` when the change expects
   * another configuration than the one chosen last, when another change is
   * under way, or when the configuration is malformed.
   */
  proposeConfig(change: ConfigChange, request: string): void {
    const leader = this.leader;
    if (this.role !== "leader" || leader === undefined) throw new NotLeaderError(this.leaderId);
    const problem = configChangeProblem(change);
    if (problem !== undefined) throw new ConfigChangeError("INVALID_CONFIG", problem);
    const latest = this.configs.latest;
    if (change.expected !== latest.id) {
      throw new ConfigChangeError("CONFIG_CHANGED", `the change expects configuration ${change.expected}, but ${latest.id} was chosen last`, latest.id);
    }
    if (leader.changingConfig()) {
      throw new ConfigChangeError("CHANGE_IN_PROGRESS", "another configuration change is being decided", latest.id);
    }
    // The entry records every member's address: those given, else the ones known now.
    const endpoints = keptEndpoints({ id: -1, voters: change.voters, learners: change.learners }, { ...latest.endpoints, ...change.endpoints });
    leader.pendingConfig = { change: endpoints === undefined ? change : { ...change, endpoints }, request };
  }

  /**
   * Asks the leader to hand leadership to `to` (a voter): it stops leading
   * and tells `to` to stand at once.
   */
  transferLeadership(to: NodeId): void {
    const leader = this.leader;
    if (this.role !== "leader" || leader === undefined) throw new NotLeaderError(this.leaderId);
    if (to === this.id) return;
    if (!isVoter(this.configs.latest, to)) throw new ConfigChangeError("NOT_A_VOTER", `${to} is not a voter of configuration ${this.configs.latest.id}`);
    const ballot = leader.ballot;
    this.becomeFollower(to);
    this.output.send({ type: "take-over", from: this.id, to, ballot });
  }

  /**
   * Asks the leader to propose a consistency check (a `check` value in a
   * slot of its own) as soon as the window allows. Throws `NotLeaderError`
   * on a replica that is not the leader.
   */
  proposeCheck(): void {
    const leader = this.leader;
    if (this.role !== "leader" || leader === undefined) throw new NotLeaderError(this.leaderId);
    leader.checkWanted = true;
  }

  /**
   * Makes a leader believe it no longer leads (a failure hook, Paxos Made
   * Live §6.3, and an operator's lever): it becomes a follower at once,
   * failing what was in flight with `EpochChangedError` or `NotLeaderError`.
   * Its lease binds the acceptors for the rest of its length, so the next
   * leader, itself or another, is chosen after that.
   */
  stepDown(): void {
    if (this.role === "leader") this.becomeFollower(undefined);
  }

  /**
   * A leader that sees a gray failure in itself (a slow disk) hands over to
   * the voter furthest along, which stands at once (`take-over`); with none
   * that has answered, it steps down. Returns the voter handed to.
   */
  handOver(): NodeId | undefined {
    const leader = this.leader;
    if (this.role !== "leader" || leader === undefined) return undefined;
    const target = leader.handOverTarget(this.configs.latest);
    if (target === undefined) this.stepDown();
    else this.transferLeadership(target);
    return target;
  }

  /**
   * Takes a snapshot installed from another replica: the state machine now
   * reflects every slot through `handle.slot`, so they are chosen here, the
   * log drops them, and the configurations come from the handle. A snapshot
   * no further than this replica already is changes nothing.
   */
  installSnapshot(handle: SnapshotHandle): void {
    if (handle.slot < this.firstUnchosen) return;
    this.configs = new ConfigLog(this.configs.alpha, handle.configs, handle.slot);
    if (handle.time > this.maxLogTime) this.maxLogTime = handle.time;
    if (this.role !== "follower") this.becomeFollower(undefined);
    this.handedOutThrough = handle.slot;
    this.skipTo(handle.slot + 1);
    this.snapshotWanted = undefined;
  }

  /** Slots below `slot` are chosen and reflected in the state machine: the log starts at `slot`. */
  private skipTo(slot: number): void {
    this.log.compact(slot);
    this.output.truncate(slot);
    if (this.firstUnchosen < slot) this.firstUnchosen = slot;
    this.advanceFirstUnchosen();
  }

  /**
   * Starts a linearizable read (read index): the returned id appears in a
   * later `Ready.reads` once a quorum has confirmed this replica still leads
   * and every slot it knew of when the read arrived is chosen.
   */
  read(): number {
    const leader = this.leader;
    if (this.role !== "leader" || leader === undefined) throw new NotLeaderError(this.leaderId);
    const id = this.nextReadId++;
    if (this.bugs.has("read-without-quorum")) {
      // Planted bug (etcd 2.0's): serve from the local state at once.
      this.output.readReady({ id, slot: this.firstUnchosen });
      return id;
    }
    // The read must see every write acknowledged before it arrived: every slot this leader knows
    // chosen, and every slot Phase 1 found (those may be chosen already, though not yet proposed
    // again). Slots still in flight hold writes nobody was told of yet: the read need not wait for them.
    const leased = this.holdsLease();
    if (leased) this.leaseReads += 1;
    leader.readIndex.add(id, Math.max(this.firstUnchosen, leader.phase.maxSlotFound + 1), leased);
    if (leased) this.checkReads();
    return id;
  }

  /**
   * Until when (by this replica's clock) it holds the master lease, if it
   * leads and a quorum of every configuration in its window answered a
   * heartbeat recent enough; undefined otherwise. See `ReplicaOptions.leaseMs`.
   */
  leaseExpiry(): number | undefined {
    const leader = this.leader;
    if (this.options.leaseMs <= 0 || this.role !== "leader" || leader === undefined) return undefined;
    const sentAt = leader.readIndex.confirmedSentAt(this.electorates().map((config) => config.voters));
    if (sentAt === undefined) return undefined;
    const drift = this.bugs.has("lease-ignores-drift") ? 0 : this.options.maxClockDrift;
    return sentAt + (this.options.leaseMs * (1 - drift)) / (1 + drift);
  }

  /** While it leads, its log clock now: what its next batch or heartbeat would carry. Undefined otherwise. */
  logClock(): number | undefined {
    const leader = this.leader;
    return this.role === "leader" && leader !== undefined ? leader.logTime(this.maxLogTime, this.clock.now()) : undefined;
  }

  /** True while this replica leads under a lease that has not run out. */
  private holdsLease(): boolean {
    const expiry = this.leaseExpiry();
    return expiry !== undefined && this.clock.now() < expiry;
  }

  /** Drops slot records below `beforeSlot`; they must be chosen and already applied (reflected in a snapshot). */
  compact(beforeSlot: number): void {
    if (beforeSlot <= this.log.logStart) return;
    invariant(beforeSlot <= this.handedOutThrough + 1, () => `compacting to ${beforeSlot} past applied ${this.handedOutThrough}`);
    this.log.compact(beforeSlot);
    this.output.truncate(beforeSlot);
  }

  // ---------------------------------------------------------------- outputs

  hasReady(): boolean {
    this.prepareOutput();
    return !this.output.isEmpty() || this.handedOutThrough < this.firstUnchosen - 1;
  }

  /** Collects everything produced since the last `ready()`. See `Ready` for what the driver must do with it. */
  ready(): Ready {
    this.prepareOutput();
    const chosen: ChosenEntry[] = [];
    for (let slot = this.handedOutThrough + 1; slot < this.firstUnchosen; slot += 1) {
      const state = this.log.get(slot);
      invariant(state?.chosen === true, () => `slot ${slot} below firstUnchosen ${this.firstUnchosen} is not chosen`);
      chosen.push({ slot, value: state.value });
    }
    this.handedOutThrough = this.firstUnchosen - 1;
    return this.output.take(chosen);
  }

  /** Tells the replica that `ready.persist` is durable: its own promise and accept votes now count. */
  advance(ready: Ready): void {
    for (const message of ready.selfAfterPersist) this.step(message);
  }

  status(): ReplicaStatus {
    return {
      id: this.id,
      role: this.role,
      promised: this.promised,
      ballot: this.leader?.ballot ?? this.candidate?.ballot ?? this.preVote?.ballot,
      leader: this.leaderId,
      firstUnchosen: this.firstUnchosen,
      logStart: this.log.logStart,
      lastSlot: this.log.lastSlot,
      handedOutThrough: this.handedOutThrough,
      queuedCommands: this.leader?.queue.size ?? 0,
      config: this.configs.latest,
      snapshotWanted: this.snapshotWanted,
      configEffectiveSlot: this.configs.latestEffectiveSlot,
      peers: this.leader?.peerStatuses(this.currentTick) ?? [],
      leaseRemainingMs: this.leaseRemainingMs(),
      leaseReads: this.leaseReads,
      rebuilding: this.rebuild !== undefined,
    };
  }

  private leaseRemainingMs(): number | undefined {
    const expiry = this.leaseExpiry();
    if (expiry === undefined) return undefined;
    const remaining = expiry - this.clock.now();
    return remaining > 0 ? remaining : undefined;
  }

  /** Set when the leader said the slots this replica lacks were compacted: the driver fetches a snapshot at `minSlot` or later. */
  get wantsSnapshot(): { readonly from: NodeId; readonly minSlot: number } | undefined {
    return this.snapshotWanted;
  }

  /** The acceptor's record of `slot`, if it holds one (for tests and the simulator's checks). */
  slotRecord(slot: number): SlotRecord | undefined {
    const state = this.log.get(slot);
    return state === undefined ? undefined : { slot, ballot: state.ballot, value: state.value, chosen: state.chosen };
  }

  /**
   * Checks the replica's internal invariants; throws `InvariantError` on the
   * first broken one. Cheap enough to run after every step in tests.
   */
  checkInvariants(): void {
    invariant(this.firstUnchosen >= this.log.logStart, "firstUnchosen below logStart");
    invariant(!this.log.get(this.firstUnchosen)?.chosen, () => `slot firstUnchosen=${this.firstUnchosen} is chosen`);
    invariant(this.handedOutThrough < this.firstUnchosen, "handed out an unchosen slot");
    invariant(this.log.size <= this.log.lastSlot - this.log.logStart + 1, "more slot records than slots in [logStart, lastSlot]");
    if (!this.bugs.has("accept-lower-ballot")) {
      invariant(compareBallots(this.log.maxAcceptedBallot, this.promised) <= 0, () => `accepted ${formatBallot(this.log.maxAcceptedBallot)} above promise ${formatBallot(this.promised)}`);
    }
    const leader = this.leader;
    if (this.role === "leader") {
      invariant(leader !== undefined, "leader without leader state");
      invariant(ballotsEqual(leader.ballot, this.promised), "leader ballot is not the promised one");
      invariant(leader.nextSlot >= this.firstUnchosen, "nextSlot below firstUnchosen");
      for (const slot of leader.proposals.keys()) invariant(slot >= this.firstUnchosen && slot < leader.nextSlot, () => `proposal at ${slot} outside window`);
      if (!this.bugs.has("config-without-alpha")) {
        invariant(leader.nextSlot - this.firstUnchosen <= this.options.alpha, () => `${leader.nextSlot - this.firstUnchosen} slots in flight, more than α = ${this.options.alpha}`);
      }
    } else {
      invariant(leader === undefined, () => `${this.role} keeps leader state`);
    }
    invariant(this.role === "candidate" ? this.candidate !== undefined : this.candidate === undefined, "candidate state mismatch");
  }

  // ---------------------------------------------------------------- elections

  private randomElectionTimeout(): number {
    return this.options.electionTicks + this.random.integer(this.options.electionTicks);
  }

  /** A leader this replica heard from within the minimum election timeout is alive. */
  private hearsLiveLeader(): boolean {
    if (this.role === "leader") return true;
    return this.leaderId !== undefined && this.electionElapsed < this.options.electionTicks;
  }

  /**
   * Members (voters of the next slot's configuration, or voters and learners
   * of the latest) stand first; any replica may stand once no leader was
   * heard for long, because a proposer need not be an acceptor: the voters
   * may be too far behind to know they vote, and a replica that knows more
   * keeps the log moving until one does, then hands over. Pre-votes keep a
   * live leader from being disturbed.
   */
  private isMember(): boolean {
    const latest = this.configs.latest;
    return isVoter(this.configs.governing(this.firstUnchosen), this.id) || isVoter(latest, this.id) || latest.learners.includes(this.id);
  }

  /** Every configuration a leader elected now would need a quorum of: those governing its window. */
  private electorates(): Configuration[] {
    return this.configs.governingRange(this.firstUnchosen, this.firstUnchosen + this.options.alpha - 1);
  }

  /** True when `granted` holds a quorum of every electorate. */
  private electedBy(granted: ReadonlySet<NodeId>): boolean {
    return quorumOfEach(this.electorates(), granted);
  }

  private startPreVote(): void {
    this.abandonLeadership(undefined);
    this.candidate = undefined;
    this.role = "pre-candidate";
    this.leaderId = undefined;
    this.electionElapsed = 0;
    this.electionTimeout = this.randomElectionTimeout();
    const ballot = nextBallot(maxBallot(this.maxBallotSeen, this.promised), this.id);
    this.preVote = { ballot, granted: new Set([this.id]) };
    if (this.checkPreVoteQuorum()) return;
    for (const member of this.configs.membersFrom(this.firstUnchosen)) {
      if (member !== this.id) this.output.send({ type: "pre-vote", from: this.id, to: member, ballot });
    }
  }

  private onPreVote(message: PreVote): void {
    // A pre-vote's ballot is hypothetical: it must not raise what we have seen.
    const granted = this.rebuild === undefined && !this.hearsLiveLeader() && compareBallots(message.ballot, this.promised) > 0;
    this.output.send({ type: "pre-vote-reply", from: this.id, to: message.from, ballot: message.ballot, granted });
  }

  private onPreVoteReply(message: PreVoteReply): void {
    const preVote = this.preVote;
    if (this.role !== "pre-candidate" || preVote === undefined || !ballotsEqual(message.ballot, preVote.ballot)) return;
    if (message.granted) {
      preVote.granted.add(message.from);
      this.checkPreVoteQuorum();
    }
  }

  private checkPreVoteQuorum(): boolean {
    const preVote = this.preVote;
    if (preVote === undefined || !this.electedBy(preVote.granted)) return false;
    this.startPhaseOne(preVote.ballot);
    return true;
  }

  /** Phase 1 for every slot from `firstUnchosen` on, with one prepare per acceptor (more only for chunked replies). */
  private startPhaseOne(ballot: Ballot, transfer = false): void {
    this.preVote = undefined;
    this.role = "candidate";
    this.electionElapsed = 0;
    const phase = new PhaseOne(ballot, this.firstUnchosen);
    this.candidate = phase;
    // Itself too, member or not: a leader's own acceptor holds its ballot.
    for (const member of [this.id, ...this.configs.membersFrom(this.firstUnchosen)]) {
      if (phase.ask(member)) this.sendPrepare(member, ballot, this.firstUnchosen, transfer);
    }
  }

  private sendPrepare(to: NodeId, ballot: Ballot, fromSlot: number, transfer = false): void {
    const prepare: Prepare = transfer ? { type: "prepare", from: this.id, to, ballot, fromSlot, transfer } : { type: "prepare", from: this.id, to, ballot, fromSlot };
    if (to === this.id) this.onPrepare(prepare);
    else this.output.send(prepare);
  }

  /** The leader cannot send the slots this replica lacks: it needs a snapshot. */
  private onNeedSnapshot(message: NeedSnapshot): void {
    this.noteBallot(message.ballot);
    if (compareBallots(message.ballot, this.promised) < 0 || message.logStart <= this.firstUnchosen) return;
    this.snapshotWanted = { from: message.from, minSlot: message.logStart - 1 };
  }

  /** The leader handed over to this replica: stand now. */
  private onTakeOver(message: TakeOver): void {
    this.noteBallot(message.ballot);
    if (this.role === "leader" || this.rebuild !== undefined) return;
    this.leaderId = undefined;
    this.startPhaseOne(nextBallot(maxBallot(this.maxBallotSeen, this.promised), this.id), true);
  }

  private onPrepare(message: Prepare): void {
    this.noteBallot(message.ballot);
    // What it promised before its state was lost is forgotten: a promise now could break one of those.
    if (this.rebuild !== undefined) return this.reject(message.from, message.ballot, "untrusted");
    const order = compareBallots(message.ballot, this.promised);
    if (order < 0) return this.reject(message.from, message.ballot, "promised-higher");
    if (order > 0 && message.from !== this.id && message.from !== this.leaderId && message.transfer !== true && this.hearsLiveLeader()) {
      return this.reject(message.from, message.ballot, "leader-alive");
    }
    // A lease binds this acceptor to its holder for its whole length, its own candidacy included; a
    // leader that hands over (`transfer`) stopped serving lease reads first.
    if (order > 0 && message.transfer !== true && this.grantedLease.refuses(message.from)) return this.reject(message.from, message.ballot, "leader-alive");
    if (order > 0) {
      this.setPromised(message.ballot);
      if (message.from !== this.id) this.becomeFollower(undefined);
    }
    const omitChosen = this.bugs.has("promise-omits-chosen");
    const found = this.log.recordsFrom(message.fromSlot, this.options.maxPromiseEntries, this.options.maxMessageBytes, (state) => !(omitChosen && state.chosen));
    const noMoreAccepted = found.complete || this.bugs.has("no-more-accepted-early");
    const promise: PromiseMessage = {
      type: "promise",
      from: this.id,
      to: message.from,
      ballot: message.ballot,
      fromSlot: Math.max(message.fromSlot, this.log.logStart),
      nextSlot: found.nextSlot,
      entries: found.records,
      noMoreAccepted,
      logStart: this.log.logStart,
      firstUnchosen: this.firstUnchosen,
    };
    this.replyAfterPersist(promise);
  }

  private onPromise(message: PromiseMessage): void {
    const phase = this.candidate ?? this.leader?.phase;
    if (phase === undefined || !ballotsEqual(message.ballot, phase.ballot)) return;
    if (message.logStart > this.firstUnchosen) {
      // The acceptor compacted chosen slots this replica lacks: it cannot
      // fill them in (a no-op there would contradict the chosen value), so it
      // does not lead. It fetches a snapshot from that acceptor, since no
      // leader may be there to tell it to (and it would stand, and be turned
      // back, again and again, resetting the others' election timers).
      this.becomeFollower(undefined);
      if (this.snapshotWanted === undefined || this.snapshotWanted.minSlot < message.logStart - 1) this.snapshotWanted = { from: message.from, minSlot: message.logStart - 1 };
      return;
    }
    phase.record(message.from, message.entries, message.noMoreAccepted);
    if (!message.noMoreAccepted) this.sendPrepare(message.from, phase.ballot, message.nextSlot);
    if (this.role === "candidate") {
      // A long Phase 1 (a candidate far behind, chunked promises) is progress, not a stalled candidacy.
      this.electionElapsed = 0;
      // Its own acceptor must have promised too: a leader's promise is its ballot (a lease may have made it refuse).
      if (this.electedBy(phase.complete) && phase.complete.has(this.id)) this.becomeLeader(phase);
      return;
    }
    // A late promise, to a leader asking members it learned of: chosen values it reported are learned.
    for (const entry of message.entries) if (entry.chosen) this.learnChosen(entry.slot, entry.value);
  }

  private becomeLeader(candidate: PhaseOne): void {
    this.candidate = undefined;
    this.role = "leader";
    this.leaderId = this.id;
    this.heartbeatElapsed = 0;
    this.leader = new Leadership(candidate, this.firstUnchosen, this.maxLogTime - this.clock.now());
    this.syncPeers(this.leader);
    // Values Phase 1 found chosen are learned now; the others are proposed
    // again (the highest-ballot value in each slot, no-ops in the gaps) as
    // the window reaches them, in `cutBatches`.
    for (let slot = candidate.fromSlot; slot <= candidate.maxSlotFound; slot += 1) {
      const found = candidate.valueAt(slot);
      if (found?.chosen) this.learnChosen(slot, found.value);
    }
    this.broadcastHeartbeat();
  }

  /** The leader replicates to every member of a configuration that governs a slot from `firstUnchosen` on. */
  private syncPeers(leader: Leadership): void {
    leader.syncPeers(this.configs.membersFrom(this.firstUnchosen), this.id, this.firstUnchosen, this.currentTick, this.options);
  }

  /** A configuration change was chosen: the leader replicates to new members, and hands over if it no longer votes. */
  private onConfigChosen(): void {
    const leader = this.leader;
    if (leader === undefined) return;
    this.syncPeers(leader);
    const latest = this.configs.latest;
    // Ask new voters to promise now, not when the window reaches the slots they govern.
    for (const voter of latest.voters) if (leader.phase.ask(voter)) this.sendPrepare(voter, leader.ballot, this.firstUnchosen);
    this.handOverIfRemoved(leader);
  }

  /**
   * A leader that is no longer a voter hands over to the voter furthest
   * along, once one has learned the configuration that made it a voter (a
   * voter that has not would refuse to stand). Until then it goes on leading
   * (a proposer need not be an acceptor), which is what brings them up to date.
   */
  private handOverIfRemoved(leader: Leadership): void {
    const latest = this.configs.latest;
    if (isVoter(latest, this.id)) return;
    const target = leader.handOverTarget(latest);
    if (target !== undefined) this.transferLeadership(target);
  }

  /** Leaves any leader or candidate role; fails what was in flight. */
  private becomeFollower(leaderHint: NodeId | undefined): void {
    this.abandonLeadership(leaderHint);
    this.preVote = undefined;
    this.candidate = undefined;
    this.role = "follower";
    this.leaderId = leaderHint;
    this.electionElapsed = 0;
    this.electionTimeout = this.randomElectionTimeout();
  }

  private abandonLeadership(hint: NodeId | undefined): void {
    const leader = this.leader;
    if (leader === undefined) return;
    this.leader = undefined;
    for (const proposal of leader.proposals.values()) {
      if (proposal.value.type !== "batch") continue;
      for (const command of proposal.value.commands) this.output.abort(command, new EpochChangedError(hint));
    }
    for (const command of leader.queue.drain()) this.output.abort(command, new NotLeaderError(hint));
    for (const id of leader.readIndex.takeAll()) this.output.readFailed(id, new NotLeaderError(hint));
  }

  private reject(to: NodeId, ballot: Ballot, reason: Reject["reason"]): void {
    const reject: Reject = { type: "reject", from: this.id, to, ballot, promised: this.promised, reason };
    if (to === this.id) this.onReject(reject);
    else this.output.send(reject);
  }

  private onReject(message: Reject): void {
    this.noteBallot(message.promised);
    const ownBallot = this.leader?.ballot ?? this.candidate?.ballot;
    if (ownBallot === undefined || !ballotsEqual(message.ballot, ownBallot)) return;
    // "leader-alive": that acceptor still hears a leader. It is simply not
    // counted; a quorum of others may still promise, else the candidacy times out.
    // "untrusted": that acceptor is rebuilding lost state and votes for no one yet.
    if (message.reason === "leader-alive" || message.reason === "untrusted") return;
    if (compareBallots(message.promised, ownBallot) > 0) {
      // The owner of the higher ballot may be a mere candidate: no leader is known.
      this.becomeFollower(undefined);
    }
  }

  // ---------------------------------------------------------------- acceptor

  private setPromised(ballot: Ballot): void {
    invariant(compareBallots(ballot, this.promised) >= 0, "promise regressed");
    if (ballotsEqual(ballot, this.promised)) return;
    this.promised = ballot;
    this.output.persistPromise(ballot);
  }

  private onAccept(message: Accept): void {
    this.noteBallot(message.ballot);
    if (this.rebuild !== undefined) return this.followWhileRebuilding(message);
    const order = compareBallots(message.ballot, this.promised);
    if (order < 0 && !this.bugs.has("accept-lower-ballot")) {
      return this.reject(message.from, message.ballot, "promised-higher");
    }
    if (order > 0) this.setPromised(message.ballot);
    if (this.role !== "follower" && message.from !== this.id) this.becomeFollower(message.from);
    this.hearFromLeader(message.from, message.ballot, message.firstUnchosen);
    const slots: number[] = [];
    for (const entry of message.entries) {
      if (entry.slot < this.log.logStart) {
        slots.push(entry.slot);
        continue;
      }
      const existing = this.log.get(entry.slot);
      if (existing?.chosen) {
        slots.push(entry.slot);
        continue;
      }
      this.writeSlot(entry.slot, { ballot: message.ballot, value: entry.value, chosen: false });
      slots.push(entry.slot);
    }
    this.learnChosenBelow(message.ballot, message.firstUnchosen);
    this.replyAfterPersist({
      type: "accepted",
      from: this.id,
      to: message.from,
      ballot: message.ballot,
      slots,
      firstUnchosen: this.firstUnchosen,
    });
  }

  private onSuccess(message: Success): void {
    this.noteBallot(message.ballot);
    for (const entry of message.entries) this.learnChosen(entry.slot, entry.value);
    if (compareBallots(message.ballot, this.promised) >= 0) this.hearFromLeader(message.from, message.ballot, message.firstUnchosen);
    this.learnChosenBelow(this.knownLeaderBallot, this.knownLeaderFirstUnchosen);
    // An empty `accepted` tells the leader how far this replica now is.
    this.output.send({
      type: "accepted",
      from: this.id,
      to: message.from,
      ballot: message.ballot,
      slots: [],
      firstUnchosen: this.firstUnchosen,
    });
  }

  /**
   * A rebuilding replica accepts nothing: it follows the leader and learns
   * chosen values from `success` and snapshots. The leader sends it no more
   * accepts once its heartbeat reply says it is rebuilding.
   */
  private followWhileRebuilding(message: Accept): void {
    if (compareBallots(message.ballot, this.knownLeaderBallot) >= 0) this.hearFromLeader(message.from, message.ballot, message.firstUnchosen);
  }

  /**
   * Votes again (Paxos Made Live §5.1): it has learned a slot whose Paxos
   * instance began after its rebuild did, so the cluster has moved on from
   * whatever it promised before; and it promises nothing below the highest
   * ballot it has seen since.
   */
  private finishRebuildIfDone(): void {
    const rebuild = this.rebuild;
    if (rebuild?.horizon === undefined || this.firstUnchosen <= rebuild.horizon) return;
    this.rebuild = undefined;
    if (compareBallots(this.maxBallotSeen, this.promised) > 0) this.setPromised(this.maxBallotSeen);
    this.output.persistRebuilt();
  }

  private onHeartbeat(message: Heartbeat): void {
    this.noteBallot(message.ballot);
    if (compareBallots(message.ballot, this.promised) < 0) return this.reject(message.from, message.ballot, "promised-higher");
    if (this.role !== "follower" && message.from !== this.id) {
      // A leader at a ballot at least our promise is alive: stop standing.
      const ownBallot = this.leader?.ballot ?? this.candidate?.ballot ?? this.preVote?.ballot;
      if (ownBallot === undefined || compareBallots(message.ballot, ownBallot) >= 0 || this.role === "pre-candidate") {
        this.becomeFollower(message.from);
      }
    }
    if (this.role !== "follower") return;
    this.hearFromLeader(message.from, message.ballot, message.firstUnchosen);
    this.learnChosenBelow(message.ballot, message.firstUnchosen);
    // The leader's log clock runs between batches too: a successor continues
    // from here, so an idle spell before a failover is not added to leases.
    if (message.logTime > this.maxLogTime) this.maxLogTime = message.logTime;
    const rebuild = this.rebuild;
    if (rebuild !== undefined && rebuild.horizon === undefined && message.horizon?.probe === rebuild.probe) {
      rebuild.horizon = message.horizon.slot;
      this.finishRebuildIfDone();
    }
    if (this.rebuild !== undefined) {
      // No lease, no read confirmed: only the probe, which the leader answers with a horizon.
      const reply: HeartbeatReply = { type: "heartbeat-reply", from: this.id, to: message.from, ballot: message.ballot, round: message.round, firstUnchosen: this.firstUnchosen, rebuilding: this.rebuild.probe };
      this.output.send(reply);
      return;
    }
    // The reply grants the lease: no other prepare for leaseMs of this clock.
    this.grantedLease.grant(message.from);
    this.output.send({
      type: "heartbeat-reply",
      from: this.id,
      to: message.from,
      ballot: message.ballot,
      round: message.round,
      firstUnchosen: this.firstUnchosen,
    });
  }

  private hearFromLeader(leaderId: NodeId, ballot: Ballot, leaderFirstUnchosen: number): void {
    if (leaderId === this.id) return;
    this.leaderId = leaderId;
    this.electionElapsed = 0;
    const order = compareBallots(ballot, this.knownLeaderBallot);
    if (order > 0) {
      this.knownLeaderBallot = ballot;
      this.knownLeaderFirstUnchosen = leaderFirstUnchosen;
    } else if (order === 0 && leaderFirstUnchosen > this.knownLeaderFirstUnchosen) {
      this.knownLeaderFirstUnchosen = leaderFirstUnchosen;
    }
  }

  /**
   * Full replication: every slot below the leader's `firstUnchosen` that this
   * acceptor accepted at the leader's own ballot holds the chosen value (the
   * leader proposes one value per slot per ballot). Slots accepted at other
   * ballots wait for a `success` from the leader.
   */
  private learnChosenBelow(ballot: Ballot, leaderFirstUnchosen: number): void {
    const through = this.bugs.has("chosen-off-by-one") ? leaderFirstUnchosen : leaderFirstUnchosen - 1;
    const anyBallot = this.bugs.has("chosen-any-ballot");
    for (let slot = this.firstUnchosen; slot <= through; slot += 1) {
      const state = this.log.get(slot);
      if (state === undefined) break;
      if (state.chosen) continue;
      if (!anyBallot && !ballotsEqual(state.ballot, ballot)) break;
      this.markChosen(slot, state);
    }
  }

  private learnChosen(slot: number, value: Value): void {
    if (slot < this.log.logStart) return;
    const state = this.log.get(slot);
    if (state?.chosen) return;
    this.writeSlot(slot, { ballot: state?.ballot ?? this.promised, value, chosen: true });
    this.advanceFirstUnchosen();
  }

  /** Marks a slot this acceptor holds chosen, value unchanged: only a compact mark is written. */
  private markChosen(slot: number, state: SlotState): void {
    this.log.set(slot, { ballot: state.ballot, value: state.value, chosen: true });
    this.leader?.proposals.delete(slot);
    this.output.persistChosenMark(slot);
    this.advanceFirstUnchosen();
  }

  private writeSlot(slot: number, state: SlotState): void {
    this.log.set(slot, state);
    // However a slot becomes known chosen (quorum, Phase 1, a `success` from
    // an earlier leader), a proposal of ours for it is settled.
    if (state.chosen) this.leader?.proposals.delete(slot);
    this.output.persistRecord({ slot, ballot: state.ballot, value: state.value, chosen: state.chosen });
    this.noteValueTime(state.value);
  }

  private advanceFirstUnchosen(): void {
    let changed = false;
    for (;;) {
      const state = this.log.get(this.firstUnchosen);
      if (state?.chosen !== true) break;
      if (state.value.type === "config" && this.configs.choose(this.firstUnchosen, state.value.change) !== undefined) changed = true;
      this.firstUnchosen += 1;
    }
    if (this.leader !== undefined && this.leader.nextSlot < this.firstUnchosen) this.leader.nextSlot = this.firstUnchosen;
    if (this.snapshotWanted !== undefined && this.firstUnchosen > this.snapshotWanted.minSlot) this.snapshotWanted = undefined;
    if (this.rebuild !== undefined) this.finishRebuildIfDone();
    if (!changed) return;
    this.configs.prune(this.firstUnchosen);
    this.onConfigChosen();
  }

  private replyAfterPersist(message: Message): void {
    if (message.to !== this.id && this.bugs.has("reply-before-persist")) this.output.send(message);
    else this.output.sendAfterPersist(message);
  }

  private noteBallot(ballot: Ballot): void {
    if (compareBallots(ballot, this.maxBallotSeen) > 0) this.maxBallotSeen = ballot;
  }

  private noteValueTime(value: Value): void {
    if (value.type === "batch" && value.time > this.maxLogTime) this.maxLogTime = value.time;
  }

  // ---------------------------------------------------------------- leader

  private tickLeader(): void {
    const leader = this.leader;
    invariant(leader !== undefined, "leader tick without leader state");
    this.heartbeatElapsed += 1;
    if (this.heartbeatElapsed < this.options.heartbeatTicks) return;
    this.heartbeatElapsed = 0;
    // Check quorum: a leader that has not heard from a majority for an
    // election timeout is likely cut off; it steps down so that clients go
    // elsewhere instead of waiting on it.
    const heard = new Set<NodeId>([this.id]);
    for (const [peer, progress] of leader.peers) {
      // A rebuilding peer answers, but votes for nothing.
      if (this.currentTick - progress.lastHeardTick < 2 * this.options.electionTicks && progress.rebuild === undefined) heard.add(peer);
      progress.retransmitIfStalled(this.currentTick, 2 * this.options.heartbeatTicks, this.log.logStart);
    }
    // While it holds a lease, no other leader can be chosen: it keeps leading (and serving reads) until the lease lapses.
    if (!this.electedBy(heard) && !this.holdsLease()) {
      this.becomeFollower(undefined);
      return;
    }
    // The oldest unchosen proposal holds up everything after it. If it has
    // waited a while, an accept or its reply was lost (a later acknowledgement
    // may have freed the window without covering it): resend from it to every
    // peer that has not voted for it.
    const oldest = leader.proposals.get(this.firstUnchosen);
    if (oldest !== undefined && this.currentTick - oldest.sentTick >= 2 * this.options.heartbeatTicks) {
      oldest.sentTick = this.currentTick;
      for (const [peer, progress] of leader.peers) {
        if (!oldest.votes.has(peer)) progress.reset(this.firstUnchosen);
      }
    }
    this.handOverIfRemoved(leader);
    if (this.leader === undefined) return;
    // Prepares to members asked after the election may have been lost: ask again those still missing.
    for (const config of [...this.electorates(), this.configs.latest]) {
      for (const voter of config.voters) if (leader.phase.awaits(voter)) this.sendPrepare(voter, leader.ballot, this.firstUnchosen);
    }
    this.broadcastHeartbeat();
  }

  private broadcastHeartbeat(): void {
    const leader = this.leader;
    if (leader === undefined) return;
    const round = leader.readIndex.startRound(this.id, this.firstUnchosen, this.clock.now());
    // The leader's own acceptor counts in the quorum that grants its lease, so it is bound too.
    this.grantedLease.grant(this.id);
    const logTime = leader.logTime(this.maxLogTime, this.clock.now());
    for (const [peer, progress] of leader.peers) {
      const heartbeat: Heartbeat = { type: "heartbeat", from: this.id, to: peer, ballot: leader.ballot, firstUnchosen: this.firstUnchosen, round, logTime };
      this.output.send(progress.rebuild === undefined ? heartbeat : { ...heartbeat, horizon: progress.rebuild });
    }
    this.checkReads();
  }

  private onHeartbeatReply(message: HeartbeatReply): void {
    const leader = this.leader;
    if (leader === undefined || !ballotsEqual(message.ballot, leader.ballot)) return;
    const progress = leader.peers.get(message.from);
    if (progress === undefined) return;
    progress.report(message.firstUnchosen, this.currentTick);
    if (message.rebuilding !== undefined) {
      // It confirms nothing. Its horizon is the next slot: make sure an instance begins there, even with no commands.
      if (progress.rebuild?.probe !== message.rebuilding) {
        progress.rebuild = { probe: message.rebuilding, slot: leader.nextSlot };
        leader.noopWanted = true;
      }
      this.sendSuccessIfBehind(leader, message.from, progress);
      return;
    }
    if (progress.rebuild !== undefined) {
      // It votes again: accepts resume from where it has learned to.
      progress.rebuild = undefined;
      progress.reset(Math.max(message.firstUnchosen, this.log.logStart));
    }
    leader.readIndex.acknowledge(message.from, message.round);
    // The follower saw our firstUnchosen of that round and marked every slot
    // it accepted at our ballot: if it is still behind it, it lacks a value.
    const sentFirstUnchosen = leader.readIndex.firstUnchosenOf(message.round);
    if (sentFirstUnchosen !== undefined && message.firstUnchosen < sentFirstUnchosen) this.sendSuccessIfBehind(leader, message.from, progress);
    this.checkReads();
  }

  private onAccepted(message: Accepted): void {
    const leader = this.leader;
    if (leader === undefined || !ballotsEqual(message.ballot, leader.ballot)) return;
    const progress = leader.peers.get(message.from);
    progress?.report(message.firstUnchosen, this.currentTick);
    let highest = -1;
    for (const slot of message.slots) {
      if (slot > highest) highest = slot;
      const proposal = leader.proposals.get(slot);
      if (proposal === undefined) continue;
      proposal.votes.add(message.from);
      if (hasQuorum(this.configs.governing(slot).voters, proposal.votes)) {
        leader.proposals.delete(slot);
        const state = this.log.get(slot);
        if (state !== undefined && !state.chosen) this.markChosen(slot, state);
        else if (state === undefined) this.learnChosen(slot, proposal.value);
      }
    }
    if (progress !== undefined) {
      if (highest >= 0) progress.acknowledge(highest, this.currentTick);
      if (message.slots.length === 0) {
        // An answer to `success`: keep feeding a replica that is catching up.
        progress.successInFlightSinceTick = undefined;
        this.sendSuccessIfBehind(leader, message.from, progress);
      }
    }
    this.checkReads();
  }

  /** Sends a lagging peer the chosen values it lacks, one bounded batch at a time. */
  private sendSuccessIfBehind(leader: Leadership, peer: NodeId, progress: PeerProgress): void {
    if (progress.firstUnchosen >= this.firstUnchosen || progress.successInFlightSinceTick !== undefined) return;
    if (progress.firstUnchosen < this.log.logStart) {
      // Compacted away: the peer fetches a snapshot (from this replica or any other that has one).
      this.output.send({ type: "need-snapshot", from: this.id, to: peer, ballot: leader.ballot, logStart: this.log.logStart });
      return;
    }
    const entries: AcceptEntry[] = [];
    let bytes = 0;
    for (let slot = progress.firstUnchosen; slot < this.firstUnchosen && entries.length < this.options.maxSuccessEntries; slot += 1) {
      const state = this.log.get(slot);
      if (!state?.chosen) continue;
      bytes += valueSize(state.value);
      if (entries.length > 0 && bytes > this.options.maxMessageBytes) break;
      entries.push({ slot, value: state.value });
    }
    if (entries.length === 0) return;
    progress.successInFlightSinceTick = this.currentTick;
    this.output.send({ type: "success", from: this.id, to: peer, ballot: leader.ballot, entries, firstUnchosen: this.firstUnchosen });
  }

  private checkReads(): void {
    const leader = this.leader;
    if (leader === undefined || leader.readIndex.waiting === 0) return;
    // Until Phase 1 has settled (every value it found is chosen, and a quorum of each configuration in
    // the window promised), a slot beyond what it found may hold a value chosen under a configuration
    // this leader has only just learned of.
    if (this.firstUnchosen <= leader.phase.maxSlotFound || !this.electedBy(leader.phase.complete)) return;
    const electorates = this.electorates().map((config) => config.voters);
    for (const read of leader.readIndex.takeReady(electorates, this.firstUnchosen)) this.output.readReady(read);
  }

  /** Cuts queued commands into slots and sends accepts within each peer's window. Runs before every `ready()`. */
  private prepareOutput(): void {
    const leader = this.leader;
    if (this.role !== "leader" || leader === undefined) return;
    this.cutBatches(leader);
    if (leader.readIndex.roundWanted) this.broadcastHeartbeat();
    for (const [peer, progress] of leader.peers) this.sendAccepts(leader, peer, progress);
  }

  /**
   * Fills the slots of the window (fewer than α past `firstUnchosen`, so the
   * configuration of each is known), one value each: what Phase 1 found
   * there, else a pending configuration change, else a batch of queued
   * commands, else a no-op where a gap must be filled or where a chosen
   * configuration waits for α slots to take effect. A slot is proposed only
   * once a quorum of its configuration has promised.
   */
  private cutBatches(leader: Leadership): void {
    const window = this.bugs.has("config-without-alpha") ? this.options.maxInflightSlots : Math.min(this.options.maxInflightSlots, this.options.alpha);
    while (leader.nextSlot - this.firstUnchosen < window) {
      const slot = leader.nextSlot;
      if (this.log.isChosen(slot)) {
        leader.nextSlot += 1;
        continue;
      }
      if (!this.promisedForSlot(leader, slot)) return;
      const time = leader.logTime(this.maxLogTime, this.clock.now());
      const value = leader.nextValue(slot, this.options, time, this.configs.latestEffectiveSlot, this.bugs.has("ignore-promised-values"));
      if (value === undefined) return;
      this.proposeAt(leader, slot, value.value, value.size);
      leader.nextSlot += 1;
    }
  }

  /** Whether a quorum of `slot`'s configuration promised this leader's ballot; asks members not yet asked. */
  private promisedForSlot(leader: Leadership, slot: number): boolean {
    const config = this.configs.governing(slot);
    if (leader.phase.hasQuorum(config.voters)) return true;
    for (const voter of config.voters) if (leader.phase.ask(voter)) this.sendPrepare(voter, leader.ballot, this.firstUnchosen);
    return false;
  }

  /** Proposes `value` for `slot` at the leader's ballot: this replica's own acceptor votes once its write is durable. */
  private proposeAt(leader: Leadership, slot: number, value: Value, size = valueSize(value)): void {
    leader.proposals.set(slot, { value, size, votes: new Set(), sentTick: this.currentTick });
    this.onAccept({
      type: "accept",
      from: this.id,
      to: this.id,
      ballot: leader.ballot,
      entries: [{ slot, value }],
      firstUnchosen: this.firstUnchosen,
    });
  }

  private sendAccepts(leader: Leadership, peer: NodeId, progress: PeerProgress): void {
    if (progress.next < this.log.logStart) return; // needs a snapshot
    if (progress.rebuild !== undefined) return; // it votes for nothing: it learns through `success`
    const entries = progress.takeAccepts(leader.proposals, leader.nextSlot, this.currentTick);
    if (entries.length === 0) return;
    this.output.send({ type: "accept", from: this.id, to: peer, ballot: leader.ballot, entries, firstUnchosen: this.firstUnchosen });
  }

  /** For diagnostics: a one-line summary. */
  describe(): string {
    const config = this.configs.latest;
    return `${this.id} ${this.role} promised=${formatBallot(this.promised)} fu=${this.firstUnchosen} last=${this.log.lastSlot} config=${config.id}:${config.voters.join(",")}/${config.learners.join(",")}`;
  }
}
