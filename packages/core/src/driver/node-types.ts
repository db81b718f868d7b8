import type { NodeId } from "../ballot.js";
import type { PlantedBugs } from "../bugs.js";
import type { Clock } from "../clock.js";
import type { Configuration } from "../config.js";
import type { StateMachine } from "../host.js";
import type { Random } from "../random.js";
import type { ReplicaOptions, ReplicaStatus } from "../replica.js";
import type { Storage } from "../storage.js";
import type { Transport } from "../transport.js";
import type { Divergence } from "./consistency.js";
import type { FailureHooks } from "./failure-points.js";
import type { SnapshotProgress } from "./snapshot-transfer.js";

/** What a `SynodNode` is made of and tuned with. */
export interface NodeConfig<Op, Test, Result, Query, QueryResult> {
  readonly id: NodeId;
  /**
   * The bootstrap configuration: the same on every replica of a cluster.
   * Later configurations come from the log (or a snapshot). A replica that
   * joins a running cluster passes no voters: it votes in nothing and stands
   * for nothing until the log or a snapshot tells it the configuration.
   */
  readonly voters: readonly NodeId[];
  readonly learners?: readonly NodeId[];
  /** Addresses of the bootstrap members, carried in the configuration (opaque to core). */
  readonly endpoints?: Readonly<Record<NodeId, string>>;
  readonly storage: Storage;
  readonly transport: Transport;
  readonly stateMachine: StateMachine<Op, Test, Result, Query, QueryResult>;
  /** Milliseconds per replica tick (default 50: a 500–1000 ms election timeout with the default 10 ticks). */
  readonly tickMs?: number;
  /**
   * Replica options. Master leases are on by default here: `leaseMs` is
   * the minimum election timeout (`electionTicks × tickMs`, 500 ms by
   * default) and `maxClockDrift` 1 %, so a leader serves linearizable reads
   * from its own state while its lease holds. Pass `leaseMs: 0` for a
   * read-index round on every read instead. See `ReplicaOptions.leaseMs` for
   * the clock assumption.
   */
  readonly replica?: Partial<ReplicaOptions>;
  /** Sessions idle longer than this, by log time, expire (default 60 s). */
  readonly sessionTtlMs?: number;
  /** Take a snapshot after this many applied slots (default 10 000; 0 disables). */
  readonly snapshotEverySlots?: number;
  /** Take a snapshot after this many (estimated) bytes of applied log, whichever comes first (default 64 MiB; 0 disables). */
  readonly snapshotEveryBytes?: number;
  /** Keep this many slots of log behind a snapshot for lagging peers (default 1 000). */
  readonly snapshotTailSlots?: number;
  /** Bytes per chunk when this replica fetches a snapshot, being too far behind for the log (default 1 MiB, at most 4 MiB). */
  readonly snapshotChunkBytes?: number;
  readonly clock?: Clock;
  readonly random?: Random;
  /** Test-only: planted protocol bugs. */
  readonly bugs?: PlantedBugs;
  /**
   * Gray failures: a leader whose disk writes take this long (the median of
   * its last eight) hands leadership to a follower with a working disk
   * (default: the minimum election timeout, `electionTicks × tickMs`; 0
   * disables). A disk that stops answering altogether stops the leader's
   * heartbeats too, and the others elect a new leader once its lease runs
   * out. Followers need no such watch: a quorum commits without a slow one.
   */
  readonly maxPersistMs?: number;
  /**
   * Gray failures: a leader whose applying of chosen slots takes this long
   * (the median of its last eight Readies' worth) hands leadership to a
   * follower (default: the minimum election timeout; 0 disables). Every
   * read and every reply waits for the leader's applying, so a replica
   * whose state machine has fallen behind should not lead.
   */
  readonly maxApplyMs?: number;
  /** Test-only: crash at named points (see `FailurePoint`). */
  readonly failureHooks?: FailureHooks;
  /**
   * Runtime consistency checks (Paxos Made Live §6.2): the leader proposes a
   * check this often (milliseconds; default 10 000; 0 disables). Every
   * replica digests its state at the check's slot (the state machine's
   * `digest`, with the session table) and sends it to the others; a replica
   * whose digest differs from a majority of the voters' is named in a
   * `divergence` event everywhere, and rebuilds itself from the others.
   */
  readonly checkEveryMs?: number;
}

export type Listener<T> = (value: T) => void;

export interface NodeEvents {
  /** The leader this replica believes in changed (undefined: none known). */
  leader: NodeId | undefined;
  /** This replica's role changed. */
  role: ReplicaStatus["role"];
  /** The replica stopped because of an error it cannot continue after. */
  fatal: Error;
  /**
   * Chosen commands were applied to the state machine, through this slot:
   * what watchers of the applied state (change feeds) wake up on. Emitted
   * once per batch of applied slots, after their outcomes are delivered.
   */
  applied: number;
  /** A snapshot transfer to this replica moved: a chunk arrived, it was installed, or a source's bytes were rejected. */
  snapshot: SnapshotProgress;
  /** The configuration chosen last changed (learned from the log or a snapshot). */
  config: Configuration;
  /** This replica stopped leading on its own, because of a gray failure it saw in itself. */
  "step-down": { readonly reason: "slow-disk" | "slow-apply"; readonly ms: number; readonly handedTo: NodeId | undefined };
  /**
   * Rebuilding state this replica lost (Paxos Made Live §5.1) started (its
   * storage was lost, or its state diverged) or finished: it votes again.
   */
  rebuild: { readonly phase: "started"; readonly reason: string } | { readonly phase: "finished"; readonly ms: number };
  /** This replica digested its state at a consistency check's slot. */
  check: { readonly slot: number; readonly digest: string };
  /** A consistency check found a replica (maybe this one: `self`) whose state differs from a majority's. */
  divergence: Divergence & { readonly self: boolean };
}
