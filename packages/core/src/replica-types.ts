import type { Ballot, NodeId } from "./ballot.js";
import { ZERO_BALLOT } from "./ballot.js";
import type { PlantedBugs } from "./bugs.js";
import type { Clock } from "./clock.js";
import type { Configuration } from "./config.js";
import type { SynodError } from "./errors.js";
import type { Message } from "./messages.js";
import type { Random } from "./random.js";
import type { ChosenEntry, Command, SlotRecord } from "./values.js";

/** Tunables of one replica. Every replica of a cluster should use the same values. */
export interface ReplicaOptions {
  /** Minimum ticks without hearing the leader before a follower stands; the timeout is drawn from `[electionTicks, 2 × electionTicks)`. */
  electionTicks: number;
  /** Ticks between the leader's heartbeats. Must be well below `electionTicks`. */
  heartbeatTicks: number;
  /** Most commands in one slot (1 disables batching). */
  maxBatchCommands: number;
  /** Most estimated bytes of commands in one slot (a single larger command still gets a slot). */
  maxBatchBytes: number;
  /** Most slots proposed and not yet chosen, and most accepts in flight to any one peer. */
  maxInflightSlots: number;
  /** Most estimated bytes of accepts in flight to any one peer. */
  maxInflightBytes: number;
  /** Most entries in one promise reply; the rest follow on further prepares (`noMoreAccepted`). */
  maxPromiseEntries: number;
  /** Most entries in one `success` message to a lagging replica. */
  maxSuccessEntries: number;
  /**
   * Most estimated bytes of values in one promise or `success` (at least one
   * entry is always sent): keeps catch-up messages well under the
   * transport's frame limit (transport-ws: 16 MiB) when slots are large.
   */
  maxMessageBytes: number;
  /** Most commands queued at the leader waiting for a slot before proposals are refused. */
  maxQueuedCommands: number;
  /**
   * Lamport's α: a configuration chosen at slot i governs slots from i + α
   * on, and the leader never has more than α slots in flight. Every replica
   * of a cluster must use the same value.
   */
  alpha: number;
  /**
   * Master leases (Paxos Made Live §5.2), in milliseconds of the injected
   * clock; 0 turns them off. An acceptor that answers a leader's heartbeat
   * promises to refuse every other prepare for `leaseMs` of its own clock
   * (a restarted acceptor, which may have promised before its crash, refuses
   * them for `leaseMs` after it starts). A leader that a quorum answered
   * holds the lease from when it sent that heartbeat for
   * `leaseMs × (1 − maxClockDrift) / (1 + maxClockDrift)` of its own clock,
   * and serves linearizable reads from its own state meanwhile, without a
   * read-index round. Every replica of a cluster must use the same value.
   * Keep it at most the election timeout, or a dead leader's lease holds up
   * the next election.
   */
  leaseMs: number;
  /**
   * The clock assumption leases rest on: no replica's clock runs faster or
   * slower than real time by more than this fraction (0.01 = 1 %). Computers'
   * monotonic clocks drift by parts per million; the bound also covers a
   * clock that jumps, which monotonic clocks do not. Beyond it, a lease read
   * may be stale.
   */
  maxClockDrift: number;
}

export const DEFAULT_REPLICA_OPTIONS: ReplicaOptions = Object.freeze({
  electionTicks: 10,
  heartbeatTicks: 2,
  maxBatchCommands: 512,
  maxBatchBytes: 512 * 1024,
  maxInflightSlots: 256,
  maxInflightBytes: 8 * 1024 * 1024,
  maxPromiseEntries: 512,
  maxSuccessEntries: 256,
  maxMessageBytes: 4 * 1024 * 1024,
  maxQueuedCommands: 100_000,
  alpha: 64,
  leaseMs: 0,
  maxClockDrift: 0.01,
});

/** What a replica finds in its storage when it starts. */
export interface RecoveredState {
  readonly promised: Ballot;
  /** Slot records in ascending slot order, all at or above `logStart`. */
  readonly records: readonly SlotRecord[];
  /** Slots below this were compacted into a snapshot. */
  readonly logStart: number;
  /** The last slot the state machine already reflects (from its snapshot); chosen entries are handed out after it. */
  readonly appliedThrough: number;
  /** The log time of the snapshot, if any: the log clock never goes below it, even when compaction left no batch behind. */
  readonly logTime?: number;
  /**
   * The configurations a snapshot carried (those governing slots after it)
   * and the slot it was taken at; without them the replica starts from the
   * bootstrap configuration in `ReplicaConfig`.
   */
  readonly configs?: { readonly history: readonly Configuration[]; readonly through: number };
  /**
   * The replica lost what it promised and accepted (a corrupted or wiped
   * disk) and is rebuilding (Paxos Made Live §5.1): it answers no prepare or
   * accept, grants no lease and stands for nothing, re-learns the chosen log
   * (and snapshots), and votes again only once it has learned a slot whose
   * Paxos instance began after its rebuild did.
   */
  readonly rebuilding?: boolean;
}

export const EMPTY_STATE: RecoveredState = Object.freeze({
  promised: ZERO_BALLOT,
  records: [],
  logStart: 0,
  appliedThrough: -1,
});

export interface ReplicaConfig {
  readonly id: NodeId;
  /** The bootstrap configuration's voters (every replica of a cluster starts from the same one). */
  readonly voters: readonly NodeId[];
  /** The bootstrap configuration's learners. */
  readonly learners?: readonly NodeId[];
  /** The bootstrap configuration's member addresses (opaque to core). */
  readonly endpoints?: Readonly<Record<NodeId, string>>;
  readonly random: Random;
  readonly clock: Clock;
  readonly options?: Partial<ReplicaOptions>;
  /** Test-only: protocol bugs to plant (see `bugs.ts`). */
  readonly bugs?: PlantedBugs;
}

/** What must be made durable before the replies in the same `Ready` may leave. */
export interface PersistBatch {
  /** The new promised ballot, when it changed. */
  readonly promised: Ballot | undefined;
  /** Slot records to write (a later record for a slot replaces an earlier one). */
  readonly records: readonly SlotRecord[];
  /**
   * Slots whose record, already written (earlier, or in `records`), is now
   * known chosen with its value unchanged: a compact mark instead of the
   * whole value again. A mark for a slot the storage no longer holds is
   * ignored (knowing a slot chosen is never needed for safety).
   */
  readonly chosen: readonly number[];
  /** Drop slot records below this slot (after a snapshot). */
  readonly truncateBefore: number | undefined;
  /** The replica finished rebuilding (see `RecoveredState.rebuilding`): from now on it votes, so it must not restart as rebuilding. */
  readonly rebuilt?: true;
}

/** A proposal that will not be answered by applying it, and why. */
export interface AbortedCommand {
  readonly command: Command;
  readonly error: SynodError;
}

/** A linearizable read the driver may now serve: the state machine has applied everything it must see. */
export interface ReadyRead {
  readonly id: number;
  /** Serve it after applying every slot below this one. */
  readonly slot: number;
}

/**
 * One batch of work for the driver, in the style of etcd-io/raft's `Ready`.
 * The driver must, in this order:
 *
 * 1. send `messages` (they vouch for no local state, so may leave at once,
 *    which lets the leader's own disk write overlap the accept broadcast);
 * 2. make `persist` durable;
 * 3. only then send `messagesAfterPersist` (promises and accepted replies:
 *    sending one before its state is durable breaks Paxos after a crash);
 * 4. apply `chosen` in order, then serve `reads`, then fail `aborted`. This
 *    step may run while step 2 is in flight: a value is chosen only once a
 *    quorum holds it durably, and never on the strength of this Ready's own
 *    persist (the replica counts its own acceptance only in `advance`);
 * 5. call `advance(ready)`.
 *
 * Readies must be processed one at a time, in the order they were produced.
 */
export interface Ready {
  readonly persist: PersistBatch;
  readonly messages: readonly Message[];
  readonly messagesAfterPersist: readonly Message[];
  readonly chosen: readonly ChosenEntry[];
  readonly reads: readonly ReadyRead[];
  readonly failedReads: readonly { readonly id: number; readonly error: SynodError }[];
  readonly aborted: readonly AbortedCommand[];
  /** Messages to this replica itself, stepped by `advance` once `persist` is durable. */
  readonly selfAfterPersist: readonly Message[];
}

export type Role = "follower" | "pre-candidate" | "candidate" | "leader";

export interface ReplicaStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly promised: Ballot;
  /** This replica's ballot while it stands or leads. */
  readonly ballot: Ballot | undefined;
  readonly leader: NodeId | undefined;
  readonly firstUnchosen: number;
  readonly logStart: number;
  readonly lastSlot: number;
  readonly handedOutThrough: number;
  readonly queuedCommands: number;
  /** The configuration chosen last, as this replica knows it. */
  readonly config: Configuration;
  /** The slot from which `config` governs. */
  readonly configEffectiveSlot: number;
  /** Set when the leader said the slots this replica lacks were compacted: fetch a snapshot at `minSlot` or later (from `from`, or any replica). */
  readonly snapshotWanted: { readonly from: NodeId; readonly minSlot: number } | undefined;
  /** On a leader: each other member's progress. */
  readonly peers: readonly PeerStatus[];
  /** On a leader holding the master lease: milliseconds of it left, by its clock (see `ReplicaOptions.leaseMs`). */
  readonly leaseRemainingMs: number | undefined;
  /** Reads this replica served under its lease, without a read-index round, since it started. */
  readonly leaseReads: number;
  /** Rebuilding lost state: it votes in nothing yet (see `RecoveredState.rebuilding`). */
  readonly rebuilding: boolean;
}

export interface PeerStatus {
  readonly id: NodeId;
  /** The peer's own `firstUnchosen`, as it last reported it; undefined until it answers this leader. */
  readonly firstUnchosen: number | undefined;
  /** Ticks since it last answered. */
  readonly silentTicks: number;
  /** It said it is rebuilding lost state, and does not vote yet. */
  readonly rebuilding: boolean;
}
