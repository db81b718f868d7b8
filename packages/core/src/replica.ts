import { type Ballot, type NodeId, ZERO_BALLOT, ballotsEqual, compareBallots, formatBallot, maxBallot, nextBallot } from "./ballot.js";
import { NO_BUGS, type PlantedBugs } from "./bugs.js";
import type { Clock } from "./clock.js";
import { EpochChangedError, NotLeaderError, OverloadedError, invariant } from "./errors.js";
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
} from "./messages.js";
import { PhaseOne } from "./phase-one.js";
import { PeerProgress } from "./progress.js";
import { ProposalQueue } from "./proposal-queue.js";
import { hasQuorum } from "./quorum.js";
import type { Random } from "./random.js";
import { ReadIndex } from "./read-index.js";
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
import { type ChosenEntry, type Command, NOOP, type SlotRecord, type Value, valueSize } from "./values.js";

export * from "./replica-types.js";


interface Proposal {
  readonly value: Value;
  readonly size: number;
  readonly votes: Set<NodeId>;
  /** Tick of the last (re)transmission of this proposal's accepts. */
  sentTick: number;
}

interface LeaderState {
  /** The leader's ballot: its epoch. */
  readonly ballot: Ballot;
  /** The next slot to propose in. */
  nextSlot: number;
  /** Slots proposed at this ballot and not yet known chosen, with their votes. */
  readonly proposals: Map<number, Proposal>;
  /** Client commands waiting for a slot. */
  readonly queue: ProposalQueue;
  readonly peers: Map<NodeId, PeerProgress>;
  readonly readIndex: ReadIndex;
  /** Log clock offset: log time = clock.now() + offset, continuing from the highest time in the log. */
  readonly timeOffset: number;
}

/**
 * A Multi-Paxos replica: proposer, acceptor and learner in one synchronous,
 * deterministic state machine. No timers, no clock reads except the injected
 * one, no randomness except the injected PRNG, no I/O: inputs arrive through
 * `step`, `tick`, `propose` and `read`; outputs leave through `ready`.
 */
export class Replica {
  readonly id: NodeId;
  private readonly voters: readonly NodeId[];
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
  private electionTimeout: number;
  private heartbeatElapsed = 0;
  /** The highest ballot seen in any prepare, accept, reject or heartbeat: a new candidacy goes above it. */
  private maxBallotSeen: Ballot;
  private preVote: { readonly ballot: Ballot; readonly granted: Set<NodeId> } | undefined;
  private candidate: PhaseOne | undefined;
  private leader: LeaderState | undefined;
  private nextReadId = 1;

  // Output accumulated for the next Ready.
  private readonly output: ReadyBuilder;

  constructor(config: ReplicaConfig, recovered: RecoveredState = EMPTY_STATE) {
    invariant(config.voters.includes(config.id), `replica ${config.id} is not among the voters ${config.voters.join(",")}`);
    this.id = config.id;
    this.output = new ReadyBuilder(config.id);
    this.voters = [...config.voters];
    this.options = { ...DEFAULT_REPLICA_OPTIONS, ...config.options };
    invariant(this.options.heartbeatTicks < this.options.electionTicks, "heartbeatTicks must be below electionTicks");
    this.random = config.random;
    this.clock = config.clock;
    this.bugs = config.bugs ?? NO_BUGS;
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
    invariant(
      this.handedOutThrough < this.firstUnchosen,
      () => `applied through ${this.handedOutThrough} but only slots below ${this.firstUnchosen} are known chosen`,
    );
    this.maxBallotSeen = this.promised;
    this.electionTimeout = this.randomElectionTimeout();
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
    if (this.electionElapsed >= this.electionTimeout) this.startPreVote();
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
    leader.readIndex.add(id, leader.nextSlot);
    return id;
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
    };
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
    for (const voter of this.voters) {
      if (voter !== this.id) this.output.send({ type: "pre-vote", from: this.id, to: voter, ballot });
    }
  }

  private onPreVote(message: PreVote): void {
    // A pre-vote's ballot is hypothetical: it must not raise what we have seen.
    const granted = !this.hearsLiveLeader() && compareBallots(message.ballot, this.promised) > 0;
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
    if (preVote === undefined || !hasQuorum(this.voters, preVote.granted)) return false;
    this.startPhaseOne(preVote.ballot);
    return true;
  }

  /** Phase 1 for every slot from `firstUnchosen` on, with one prepare per acceptor (more only for chunked replies). */
  private startPhaseOne(ballot: Ballot): void {
    this.preVote = undefined;
    this.role = "candidate";
    this.electionElapsed = 0;
    this.candidate = new PhaseOne(ballot, this.firstUnchosen);
    for (const voter of this.voters) this.sendPrepare(voter, ballot, this.firstUnchosen);
  }

  private sendPrepare(to: NodeId, ballot: Ballot, fromSlot: number): void {
    const prepare: Prepare = { type: "prepare", from: this.id, to, ballot, fromSlot };
    if (to === this.id) this.onPrepare(prepare);
    else this.output.send(prepare);
  }

  private onPrepare(message: Prepare): void {
    this.noteBallot(message.ballot);
    const order = compareBallots(message.ballot, this.promised);
    if (order < 0) return this.reject(message.from, message.ballot, "promised-higher");
    if (order > 0 && message.from !== this.id && message.from !== this.leaderId && this.hearsLiveLeader()) {
      return this.reject(message.from, message.ballot, "leader-alive");
    }
    if (order > 0) {
      this.setPromised(message.ballot);
      if (message.from !== this.id) this.becomeFollower(undefined);
    }
    const omitChosen = this.bugs.has("promise-omits-chosen");
    const found = this.log.recordsFrom(message.fromSlot, this.options.maxPromiseEntries, (state) => !(omitChosen && state.chosen));
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
    const candidate = this.candidate;
    if (this.role !== "candidate" || candidate === undefined || !ballotsEqual(message.ballot, candidate.ballot)) return;
    if (message.logStart > candidate.fromSlot) {
      // The acceptor compacted chosen slots this replica lacks: it cannot
      // fill them in (a no-op there would contradict the chosen value), so it
      // does not lead; it waits to catch up from whoever does.
      this.becomeFollower(undefined);
      return;
    }
    candidate.record(message.from, message.entries, message.noMoreAccepted);
    if (!message.noMoreAccepted) this.sendPrepare(message.from, candidate.ballot, message.nextSlot);
    if (candidate.hasQuorum(this.voters)) this.becomeLeader(candidate);
  }

  private becomeLeader(candidate: PhaseOne): void {
    this.candidate = undefined;
    this.role = "leader";
    this.leaderId = this.id;
    this.heartbeatElapsed = 0;
    const ballot = candidate.ballot;
    const peers = new Map<NodeId, PeerProgress>();
    for (const voter of this.voters) {
      if (voter === this.id) continue;
      peers.set(voter, new PeerProgress(candidate.fromSlot, this.currentTick, this.options.maxInflightSlots, this.options.maxInflightBytes));
    }
    this.leader = {
      ballot,
      nextSlot: candidate.fromSlot,
      proposals: new Map(),
      queue: new ProposalQueue(),
      peers,
      readIndex: new ReadIndex(),
      timeOffset: this.maxLogTime - this.clock.now(),
    };
    // Re-propose every slot Phase 1 found, the highest-ballot value in each,
    // and fill the gaps with no-ops, so every slot below nextSlot gets chosen.
    const leader = this.leader;
    for (let slot = candidate.fromSlot; slot <= candidate.maxSlotFound; slot += 1) {
      const found = candidate.valueAt(slot);
      const local = this.log.get(slot);
      if (local?.chosen) {
        // Already chosen here: peers that lack it learn it by `success`.
      } else if (found?.chosen) {
        this.learnChosen(slot, found.value);
      } else {
        const value = found === undefined || this.bugs.has("ignore-promised-values") ? NOOP : found.value;
        this.proposeAt(leader, slot, value);
      }
      leader.nextSlot = slot + 1;
    }
    this.broadcastHeartbeat();
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
    if (message.reason === "leader-alive") return;
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
    while (this.log.isChosen(this.firstUnchosen)) this.firstUnchosen += 1;
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
      if (this.currentTick - progress.lastHeardTick < 2 * this.options.electionTicks) heard.add(peer);
      progress.retransmitIfStalled(this.currentTick, 2 * this.options.heartbeatTicks, this.log.logStart);
    }
    if (!hasQuorum(this.voters, heard)) {
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
    this.broadcastHeartbeat();
  }

  private broadcastHeartbeat(): void {
    const leader = this.leader;
    if (leader === undefined) return;
    const round = leader.readIndex.startRound(this.id, this.firstUnchosen);
    const logTime = this.leaderLogTime(leader);
    for (const peer of leader.peers.keys()) {
      this.output.send({
        type: "heartbeat",
        from: this.id,
        to: peer,
        ballot: leader.ballot,
        firstUnchosen: this.firstUnchosen,
        round,
        logTime,
      });
    }
    this.checkReads();
  }

  private onHeartbeatReply(message: HeartbeatReply): void {
    const leader = this.leader;
    if (leader === undefined || !ballotsEqual(message.ballot, leader.ballot)) return;
    const progress = leader.peers.get(message.from);
    if (progress === undefined) return;
    progress.lastHeardTick = this.currentTick;
    // The latest report, not the highest: a restarted replica may have lost unsynced chosen marks.
      progress.firstUnchosen = message.firstUnchosen;
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
    if (progress !== undefined) {
      progress.lastHeardTick = this.currentTick;
      // The latest report, not the highest: a restarted replica may have lost unsynced chosen marks.
      progress.firstUnchosen = message.firstUnchosen;
    }
    let highest = -1;
    for (const slot of message.slots) {
      if (slot > highest) highest = slot;
      const proposal = leader.proposals.get(slot);
      if (proposal === undefined) continue;
      proposal.votes.add(message.from);
      if (hasQuorum(this.voters, proposal.votes)) {
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
  private sendSuccessIfBehind(leader: LeaderState, peer: NodeId, progress: PeerProgress): void {
    if (progress.firstUnchosen >= this.firstUnchosen || progress.successInFlightSinceTick !== undefined) return;
    if (progress.firstUnchosen < this.log.logStart) return; // needs a snapshot: a later issue streams one.
    const entries: AcceptEntry[] = [];
    for (let slot = progress.firstUnchosen; slot < this.firstUnchosen && entries.length < this.options.maxSuccessEntries; slot += 1) {
      const state = this.log.get(slot);
      if (state?.chosen) entries.push({ slot, value: state.value });
    }
    if (entries.length === 0) return;
    progress.successInFlightSinceTick = this.currentTick;
    this.output.send({ type: "success", from: this.id, to: peer, ballot: leader.ballot, entries, firstUnchosen: this.firstUnchosen });
  }

  private checkReads(): void {
    const leader = this.leader;
    if (leader === undefined || leader.readIndex.waiting === 0) return;
    for (const read of leader.readIndex.takeReady(this.voters, this.firstUnchosen)) this.output.readReady(read);
  }

  /** Cuts queued commands into slots and sends accepts within each peer's window. Runs before every `ready()`. */
  private prepareOutput(): void {
    const leader = this.leader;
    if (this.role !== "leader" || leader === undefined) return;
    this.cutBatches(leader);
    if (leader.readIndex.roundWanted) this.broadcastHeartbeat();
    for (const [peer, progress] of leader.peers) this.sendAccepts(leader, peer, progress);
  }

  /** The leader's log clock: its own clock from where the log's left off, never going back. */
  private leaderLogTime(leader: LeaderState): number {
    return Math.max(this.maxLogTime, this.clock.now() + leader.timeOffset);
  }

  /** Cuts queued commands into batches, one slot each, while the window of unchosen slots allows. */
  private cutBatches(leader: LeaderState): void {
    const { maxBatchCommands, maxBatchBytes, maxInflightSlots } = this.options;
    while (leader.nextSlot - this.firstUnchosen < maxInflightSlots) {
      const batch = leader.queue.cut(maxBatchCommands, maxBatchBytes);
      if (batch === undefined) return;
      const time = this.leaderLogTime(leader);
      this.proposeAt(leader, leader.nextSlot, { type: "batch", time, commands: batch.commands }, batch.bytes + 32);
      leader.nextSlot += 1;
    }
  }

  /** Proposes `value` for `slot` at the leader's ballot: this replica's own acceptor votes once its write is durable. */
  private proposeAt(leader: LeaderState, slot: number, value: Value, size = valueSize(value)): void {
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

  private sendAccepts(leader: LeaderState, peer: NodeId, progress: PeerProgress): void {
    if (progress.next < this.log.logStart) return; // needs a snapshot
    const entries = progress.takeAccepts(leader.proposals, leader.nextSlot, this.currentTick);
    if (entries.length === 0) return;
    this.output.send({ type: "accept", from: this.id, to: peer, ballot: leader.ballot, entries, firstUnchosen: this.firstUnchosen });
  }

  /** For diagnostics: a one-line summary. */
  describe(): string {
    return `${this.id} ${this.role} promised=${formatBallot(this.promised)} fu=${this.firstUnchosen} last=${this.log.lastSlot}`;
  }
}
