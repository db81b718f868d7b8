import type { Ballot, NodeId } from "./ballot.js";
import type { SlotRecord, Value } from "./values.js";

/**
 * Every message between replicas: a discriminated union on `type`. The zod
 * schemas in `schema.ts` mirror these at the wire boundary, and a type test
 * keeps the two equal.
 */
export type Message =
  | PreVote
  | PreVoteReply
  | Prepare
  | Promise
  | Accept
  | Accepted
  | Reject
  | Success
  | Heartbeat
  | HeartbeatReply
  | TakeOver
  | NeedSnapshot
  | SnapshotRequest
  | SnapshotChunk
  | Digest;

interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
}

/**
 * Asks whether the receiver would promise `ballot`, without changing any
 * state. A node runs Phase 1 only after a quorum says yes, so a node that
 * rejoins after a partition cannot depose a healthy leader by raising rounds.
 */
export interface PreVote extends Envelope {
  readonly type: "pre-vote";
  readonly ballot: Ballot;
}

export interface PreVoteReply extends Envelope {
  readonly type: "pre-vote-reply";
  readonly ballot: Ballot;
  readonly granted: boolean;
}

/** Phase 1a for every slot from `fromSlot` on: one prepare for the whole log suffix. */
export interface Prepare extends Envelope {
  readonly type: "prepare";
  readonly ballot: Ballot;
  readonly fromSlot: number;
  /** The leader handed over to the sender (`take-over`): acceptors that still hear it promise anyway. */
  readonly transfer?: boolean;
}

/**
 * Phase 1b: the acceptor promised `ballot` and reports what it accepted in
 * `[fromSlot, nextSlot)`. `noMoreAccepted` says it accepted nothing at or
 * after `nextSlot`, so the proposer needs no further prepare from it; without
 * it the proposer asks again from `nextSlot` (the reply is chunked).
 */
export interface Promise extends Envelope {
  readonly type: "promise";
  readonly ballot: Ballot;
  readonly fromSlot: number;
  readonly nextSlot: number;
  readonly entries: readonly SlotRecord[];
  readonly noMoreAccepted: boolean;
  /** The first slot still in the acceptor's log; below it entries were compacted. */
  readonly logStart: number;
  readonly firstUnchosen: number;
}

export interface AcceptEntry {
  readonly slot: number;
  readonly value: Value;
}

/**
 * Phase 2a for one or more slots (pipelined, many in one message). Carries the
 * leader's `firstUnchosen`: the acceptor marks its slots below it that hold
 * this same ballot as chosen (full replication).
 */
export interface Accept extends Envelope {
  readonly type: "accept";
  readonly ballot: Ballot;
  readonly entries: readonly AcceptEntry[];
  readonly firstUnchosen: number;
}

/** Phase 2b: the acceptor accepted `slots` at `ballot`; carries its own `firstUnchosen`. */
export interface Accepted extends Envelope {
  readonly type: "accepted";
  readonly ballot: Ballot;
  readonly slots: readonly number[];
  readonly firstUnchosen: number;
}

/** The receiver has promised a higher ballot than the one in the request. */
export interface Reject extends Envelope {
  readonly type: "reject";
  readonly ballot: Ballot;
  readonly promised: Ballot;
  readonly reason: "promised-higher" | "leader-alive" | "untrusted";
}

/** Tells a replica the chosen values of slots it lacks (classic `Success(slot, value)`, batched). */
export interface Success extends Envelope {
  readonly type: "success";
  readonly ballot: Ballot;
  readonly entries: readonly AcceptEntry[];
  readonly firstUnchosen: number;
}

/**
 * Liveness, leadership and read-index confirmation. `round` counts heartbeat
 * rounds so that a read can wait for a quorum that answered a round started
 * after it arrived.
 */
export interface Heartbeat extends Envelope {
  readonly type: "heartbeat";
  readonly ballot: Ballot;
  readonly firstUnchosen: number;
  readonly round: number;
  /** The leader's log clock when it sent this: a successor's log clock continues from the highest one heard. */
  readonly logTime: number;
  /**
   * To a rebuilding replica that sent `probe`: every slot from `slot` on is
   * proposed after the leader heard that probe, so after the rebuild began.
   */
  readonly horizon?: { readonly probe: number; readonly slot: number };
}

export interface HeartbeatReply extends Envelope {
  readonly type: "heartbeat-reply";
  readonly ballot: Ballot;
  readonly round: number;
  readonly firstUnchosen: number;
  /**
   * Set by a replica rebuilding its lost state (Paxos Made Live §5.1): it
   * grants no lease and confirms no read; the leader answers with a
   * `horizon` naming this probe.
   */
  readonly rebuilding?: number;
}

/**
 * The leader hands leadership to the receiver (it is leaving the voters, or
 * an operator asked): the receiver stands at once, without waiting for an
 * election timeout. Only liveness rests on it; Phase 1 keeps it safe.
 */
export interface TakeOver extends Envelope {
  readonly type: "take-over";
  readonly ballot: Ballot;
}

/**
 * The leader cannot send the receiver the slots it lacks: they were
 * compacted below `logStart`. The receiver fetches a snapshot taken at
 * `logStart - 1` or later, from any replica that has one.
 */
export interface NeedSnapshot extends Envelope {
  readonly type: "need-snapshot";
  readonly ballot: Ballot;
  readonly logStart: number;
}

/**
 * Asks for the next chunk of a snapshot at `minSlot` or later. `resume`
 * names a transfer under way (its snapshot's slot and checksum, and how many
 * bytes arrived): a replica with that same snapshot continues from there.
 */
export interface SnapshotRequest extends Envelope {
  readonly type: "snapshot-request";
  readonly minSlot: number;
  readonly resume?: { readonly slot: number; readonly checksum: number; readonly offset: number };
  /** Bytes wanted in the chunk (the sender caps it at `MAX_SNAPSHOT_CHUNK_BYTES`). */
  readonly length: number;
}

/** The largest snapshot chunk a replica sends: its base64 fits well inside a transport frame. */
export const MAX_SNAPSHOT_CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * One chunk of a snapshot's bytes (handle and data, see `encodeSnapshot`):
 * `size` and `checksum` (CRC32C) of the whole, `offset` and `crc` (CRC32C)
 * of this chunk, base64 `data`. `available: false` says the sender has no
 * snapshot at the slot asked for.
 */
export interface SnapshotChunk extends Envelope {
  readonly type: "snapshot-chunk";
  readonly available: boolean;
  readonly slot: number;
  readonly checksum: number;
  readonly size: number;
  readonly offset: number;
  readonly data: string;
  readonly crc: number;
}

/**
 * A runtime consistency check's result on the sender: the digest of its
 * state after applying every slot below the check slot `slot`.
 */
export interface Digest extends Envelope {
  readonly type: "digest";
  readonly slot: number;
  readonly digest: string;
}

export type MessageType = Message["type"];
