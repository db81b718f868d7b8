import { type Ballot, type NodeId, compareBallots } from "./ballot.js";
import { NO_BUGS, type PlantedBugs } from "./bugs.js";
import { concatBytes } from "./bytes.js";
import { ConfigLog, type Configuration } from "./config.js";
import { EpochChangedError, type ErrorReply, SessionExpiredError, StaleSequenceError, invariant } from "./errors.js";
import type { ChosenEntry, Command } from "./values.js";

/** What an operation learns about where it is applied. Identical on every replica. */
export interface ApplyContext {
  /** The slot being applied. */
  readonly slot: number;
  /** The log clock of the slot's batch (milliseconds, never decreasing along the log). */
  readonly time: number;
  readonly session: string;
  readonly seq: number;
  /** The epoch (leader's ballot) the command was accepted under; undefined for logs from before epochs. */
  readonly epoch?: Ballot | undefined;
}

/**
 * A deterministic application on the replicated log. Every replica applies the
 * same operations in the same order and must reach the same state: no clocks
 * (use `context.time`), no randomness, no I/O, no iteration over unordered
 * sources. `apply` and `test` must not throw: report bad operations in the
 * result (a throw stops the replica, because skipping a slot would diverge).
 *
 * Never give a state machine a callable `then`: `await` would take it for a promise.
 */
export interface StateMachine<Op = unknown, Test = unknown, Result = unknown, Query = unknown, QueryResult = unknown> {
  apply(op: Op, context: ApplyContext): Result;
  /** A MultiOp guard: does `test` hold in the current state? */
  test(test: Test, context: ApplyContext): boolean;
  /** Answers a read from the applied state. */
  query(query: Query): QueryResult;
  /**
   * Captures the current state, synchronously, and returns a function that
   * serializes that capture later, while applying goes on (copy-on-write,
   * persistent data structures, or a plain copy for small states). A large
   * state should give its bytes as chunks (a generator is enough): the
   * driver then writes them to storage as they come and never holds the
   * whole serialization.
   */
  snapshot(): () => SnapshotData;
  /** Replaces the state with a snapshot's. */
  restore(data: Uint8Array): void;
  /**
   * Optional, for states too large to hold twice: replaces the state with a
   * snapshot's read as chunks (of any size, split anywhere). Build the new
   * state aside and replace the old one at the end: queries may arrive while
   * the chunks do. On bad bytes, throw and change nothing. Without it, the
   * driver reads the whole snapshot into memory and calls `restore`.
   */
  restoreFrom?(chunks: AsyncIterable<Uint8Array>): Promise<void>;
  /**
   * Optional, for a state machine that keeps its state on disk itself: make
   * the state as of `handle.slot` durable, together with `handle` (the
   * session table and configurations the log vouches for there). The driver
   * calls it on its snapshot policy instead of writing snapshot files, and
   * drops the log behind it once it resolves.
   */
  checkpoint?(handle: SnapshotHandle): void | PromiseLike<void>;
  /**
   * Optional, with `checkpoint`: at start, the handle of the state on disk
   * (the last checkpoint's), with that state already loaded; the replica
   * goes on from the slot after it instead of replaying the log.
   */
  recover?(): SnapshotHandle | undefined;
  /**
   * Optional: a digest of the current state, for runtime consistency checks
   * and the simulator's divergence detection. Equal states must give equal digests.
   */
  digest?(): string;
}

/** The result of a MultiOp: which branch ran, and each of its operations' results. */
export interface MultiOpResult<Result = unknown> {
  readonly succeeded: boolean;
  readonly results: readonly Result[];
}

export type Outcome = { readonly ok: true; readonly result: unknown } | { readonly ok: false; readonly error: ErrorReply };

/** One applied command and its outcome, to answer the client that proposed it. */
export interface AppliedCommand {
  readonly command: Command;
  readonly slot: number;
  readonly outcome: Outcome;
  /** True when this was a retry answered from the session table, not applied again. */
  readonly duplicate: boolean;
}

interface SessionEntry {
  lastSeq: number;
  lastOutcome: Outcome;
  lastActive: number;
}

/** A session as written in a snapshot handle. */
export interface SessionRecord {
  readonly session: string;
  readonly lastSeq: number;
  readonly lastOutcome: Outcome;
  readonly lastActive: number;
}

/**
 * What the log vouches for at a snapshot: the slot it reflects, the log time,
 * the configurations and the session table. An application snapshot written
 * against a handle, plus the handle, replaces the log up to `slot`.
 */
export interface SnapshotHandle {
  readonly slot: number;
  readonly time: number;
  /** The newest epoch applied through `slot` (see `StateMachineHost.apply`). */
  readonly epoch?: Ballot | undefined;
  /** The configurations that govern the slots after `slot` (the first governs `slot + 1`). */
  readonly configs: readonly Configuration[];
  readonly sessions: readonly SessionRecord[];
}

/** A configuration change applied: the configuration it made, or undefined when it was refused (it expected another). */
export interface AppliedConfig {
  readonly slot: number;
  readonly request: string;
  readonly config: Configuration | undefined;
  /** The configuration chosen last, after this entry. */
  readonly latest: Configuration;
}

export interface Snapshot {
  readonly handle: SnapshotHandle;
  readonly data: Uint8Array;
}

/** A state machine's serialized state: all at once, or as chunks (sync or async) for a state too large to hold twice. */
export type SnapshotData = Uint8Array | PromiseLike<Uint8Array> | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

/** The chunks of any `SnapshotData`. */
export async function* snapshotChunks(data: SnapshotData): AsyncGenerator<Uint8Array> {
  if (data instanceof Uint8Array) {
    yield data;
  } else if (Symbol.asyncIterator in data || Symbol.iterator in data) {
    yield* data as AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
  } else {
    yield await data;
  }
}

/** Every chunk of `chunks` in one array (for snapshots small enough to hold whole). */
export async function collectChunks(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const part of chunks) parts.push(part);
  return concatBytes(parts);
}

export interface HostOptions {
  /** A session idle (by log time) for longer than this is expired, deterministically, at the next batch. */
  readonly sessionTtlMs: number;
  /** The bootstrap configuration's voters and learners (as the replica's). */
  readonly voters: readonly NodeId[];
  readonly learners?: readonly NodeId[];
  readonly endpoints?: Readonly<Record<NodeId, string>>;
  /** The replicas' α (default 64, as `ReplicaOptions`). */
  readonly alpha?: number;
  readonly bugs?: PlantedBugs;
}

const OK_NULL: Outcome = Object.freeze({ ok: true, result: null });

/**
 * Runs an application on chosen entries: the exactly-once session table,
 * MultiOp evaluation, deterministic session expiry, and snapshot handles.
 * Synchronous and deterministic, like the replica.
 */
export class StateMachineHost<Op = unknown, Test = unknown, Result = unknown, Query = unknown, QueryResult = unknown> {
  private readonly sessions = new Map<string, SessionEntry>();
  private appliedThroughSlot = -1;
  private logTime = 0;
  /** The newest epoch whose batches were applied: a batch of an older one is stale. */
  private epoch: Ballot | undefined;
  private readonly bugs: PlantedBugs;
  private configs: ConfigLog;
  private configOutcomes: AppliedConfig[] = [];

  constructor(
    readonly machine: StateMachine<Op, Test, Result, Query, QueryResult>,
    private readonly options: HostOptions,
  ) {
    invariant(options.sessionTtlMs > 0, "sessionTtlMs must be positive");
    this.bugs = options.bugs ?? NO_BUGS;
    this.configs = ConfigLog.bootstrap(options.alpha ?? 64, options.voters, options.learners ?? [], options.endpoints);
  }

  /** The configuration chosen last, as applied here. */
  get config(): Configuration {
    return this.configs.latest;
  }

  /** The configuration changes applied since the last call, with their outcomes. */
  takeConfigOutcomes(): AppliedConfig[] {
    const outcomes = this.configOutcomes;
    this.configOutcomes = [];
    return outcomes;
  }

  get appliedThrough(): number {
    return this.appliedThroughSlot;
  }

  get time(): number {
    return this.logTime;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  hasSession(session: string): boolean {
    return this.sessions.has(session);
  }

  /** The cached outcome of `(session, seq)` if that command was already applied. */
  cachedOutcome(session: string, seq: number): Outcome | undefined {
    const entry = this.sessions.get(session);
    return entry !== undefined && entry.lastSeq === seq ? entry.lastOutcome : undefined;
  }

  /** Applies one chosen slot; slots must come in order without gaps. */
  apply(entry: ChosenEntry): AppliedCommand[] {
    invariant(entry.slot === this.appliedThroughSlot + 1, () => `applying slot ${entry.slot} after ${this.appliedThroughSlot}`);
    this.appliedThroughSlot = entry.slot;
    const value = entry.value;
    if (value.type === "config") {
      const config = this.configs.choose(entry.slot, value.change);
      this.configs.prune(entry.slot + 1);
      this.configOutcomes.push({ slot: entry.slot, request: value.request, config, latest: this.configs.latest });
      return [];
    }
    if (value.type !== "batch") return [];
    const epoch = value.epoch;
    if (epoch !== undefined && this.epoch !== undefined && compareBallots(epoch, this.epoch) < 0) {
      // A batch of an older epoch, chosen after batches of a newer one: a leader that lost
      // mastership accepted it, and a later leader found it. It is not applied as if current
      // (Paxos Made Live §5.3): each command fails with EPOCH_CHANGED and leaves the session
      // table alone, so its client's retry with the same sequence number applies it once.
      return value.commands.map((command) => ({ command, slot: entry.slot, outcome: errorOutcome(new EpochChangedError(undefined)), duplicate: false }));
    }
    if (epoch !== undefined) this.epoch = epoch;
    if (value.time > this.logTime) this.logTime = value.time;
    this.expireSessions();
    const applied: AppliedCommand[] = [];
    for (const command of value.commands) applied.push(this.applyCommand(entry.slot, command, epoch));
    return applied;
  }

  query(query: Query): QueryResult {
    return this.machine.query(query);
  }

  /**
   * Takes a snapshot handle for the current applied slot and captures the
   * application's state; `write()` serializes it later while applying goes on.
   */
  beginSnapshot(): { readonly handle: SnapshotHandle; readonly write: () => Promise<Snapshot>; readonly chunks: () => AsyncGenerator<Uint8Array> } {
    const handle = this.handle();
    const serialize = this.machine.snapshot();
    return {
      handle,
      write: async () => ({ handle, data: await collectChunks(snapshotChunks(serialize())) }),
      chunks: () => snapshotChunks(serialize()),
    };
  }

  /** What the log vouches for at the applied slot: slot, log time, configurations, session table. */
  handle(): SnapshotHandle {
    return {
      slot: this.appliedThroughSlot,
      time: this.logTime,
      ...(this.epoch === undefined ? {} : { epoch: this.epoch }),
      configs: this.configs.historyAfter(this.appliedThroughSlot),
      sessions: [...this.sessions].map(([session, entry]) => ({ session, ...entry })),
    };
  }

  /** Replaces the application state and the session table with a snapshot's. */
  restore(snapshot: Snapshot): void {
    this.machine.restore(snapshot.data);
    this.adopt(snapshot.handle);
  }

  /** `restore` from a snapshot's data as chunks: streamed into the application if it can take them, else read whole first. */
  async restoreFrom(handle: SnapshotHandle, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    if (this.machine.restoreFrom !== undefined) await this.machine.restoreFrom(chunks);
    else this.machine.restore(await collectChunks(chunks));
    this.adopt(handle);
  }

  /** Takes a handle's session table, slot, time and configurations for a state the application already holds. */
  adopt(handle: SnapshotHandle): void {
    this.sessions.clear();
    for (const record of handle.sessions) {
      this.sessions.set(record.session, { lastSeq: record.lastSeq, lastOutcome: record.lastOutcome, lastActive: record.lastActive });
    }
    this.appliedThroughSlot = handle.slot;
    this.logTime = handle.time;
    this.epoch = handle.epoch;
    this.configs = new ConfigLog(this.configs.alpha, handle.configs, handle.slot);
    this.configOutcomes = [];
  }


  /** A digest of sessions and application state at the applied slot (application digest when it provides one). */
  digest(): string {
    const app = this.machine.digest?.() ?? "";
    let sessions = "";
    for (const [session, entry] of this.sessions) sessions += `${session}:${entry.lastSeq};`;
    return `${this.appliedThroughSlot}|${app}|${sessions}`;
  }

  /**
   * Starts over from nothing: the application restored from `empty` (its
   * state before anything was applied), no sessions, the bootstrap
   * configuration. For a replica that rebuilds itself in place.
   */
  reset(empty: Uint8Array): void {
    this.machine.restore(empty);
    this.sessions.clear();
    this.appliedThroughSlot = -1;
    this.logTime = 0;
    this.epoch = undefined;
    this.configs = ConfigLog.bootstrap(this.options.alpha ?? 64, this.options.voters, this.options.learners ?? [], this.options.endpoints);
    this.configOutcomes = [];
  }

  private applyCommand(slot: number, command: Command, epoch: Ballot | undefined): AppliedCommand {
    const body = command.body;
    const existing = this.sessions.get(command.session);
    if (body.type === "open-session") {
      if (existing === undefined) this.touch(command.session, { lastSeq: command.seq, lastOutcome: OK_NULL, lastActive: this.logTime });
      else this.touch(command.session, { ...existing, lastActive: this.logTime });
      return { command, slot, outcome: OK_NULL, duplicate: existing !== undefined };
    }
    if (existing === undefined) {
      return { command, slot, outcome: errorOutcome(new SessionExpiredError(command.session)), duplicate: false };
    }
    if (!this.bugs.has("ignore-session-table")) {
      if (command.seq === existing.lastSeq) {
        this.touch(command.session, { ...existing, lastActive: this.logTime });
        return { command, slot, outcome: existing.lastOutcome, duplicate: true };
      }
      if (command.seq < existing.lastSeq) {
        return { command, slot, outcome: errorOutcome(new StaleSequenceError(command.session, command.seq, existing.lastSeq)), duplicate: true };
      }
    }
    if (body.type === "close-session") {
      this.sessions.delete(command.session);
      return { command, slot, outcome: OK_NULL, duplicate: false };
    }
    const context: ApplyContext = { slot, time: this.logTime, session: command.session, seq: command.seq, epoch };
    let result: unknown;
    if (body.type === "op") {
      result = this.machine.apply(body.op as Op, context);
    } else {
      const succeeded = body.guard.every((test) => this.machine.test(test as Test, context));
      const branch = succeeded ? body.top : body.fop;
      const results = branch.map((op) => this.machine.apply(op as Op, context));
      result = { succeeded, results } satisfies MultiOpResult;
    }
    const outcome: Outcome = { ok: true, result };
    this.touch(command.session, { lastSeq: command.seq, lastOutcome: outcome, lastActive: this.logTime });
    return { command, slot, outcome, duplicate: false };
  }

  /**
   * Keeps the Map's order least recently active first. Log time never goes
   * down, so an entry already active at this time is in order where it is and
   * is updated in place (the common case in a batch; re-inserting costs).
   */
  private touch(session: string, entry: SessionEntry): void {
    const existing = this.sessions.get(session);
    if (existing === undefined || existing.lastActive !== entry.lastActive) this.sessions.delete(session);
    this.sessions.set(session, entry);
  }

  private expireSessions(): void {
    const deadline = this.logTime - this.options.sessionTtlMs;
    for (const [session, entry] of this.sessions) {
      if (entry.lastActive >= deadline) break;
      this.sessions.delete(session);
    }
  }
}

export function errorOutcome(error: { code: string; message: string; leaderHint?: NodeId | undefined }): Outcome {
  const reply: ErrorReply =
    error.leaderHint === undefined ? { code: error.code, message: error.message } : { code: error.code, message: error.message, leaderHint: error.leaderHint };
  return { ok: false, error: reply };
}
