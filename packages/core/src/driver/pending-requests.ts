import { type Ballot, ballotsEqual } from "../ballot.js";
import type { Configuration } from "../config.js";
import { ConfigChangeError, EpochChangedError } from "../errors.js";
import type { AppliedConfig, Outcome } from "../host.js";
import type { ReplicaStatus } from "../replica.js";
import type { Command } from "../values.js";

/** A caller waiting for an answer. */
export interface Waiter<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

/**
 * The callers a node owes an answer until the replicated state gives it:
 * commands, linearizable reads and configuration changes. No I/O: the node
 * hands in what each Ready decided, and each caller is answered once.
 */
export class PendingRequests<Query, QueryResult> {
  /** Callers waiting for a command's outcome, by session and sequence number (a retry joins the first). */
  private readonly commands = new Map<string, Waiter<Outcome>[]>();
  /** Reads waiting for the replica to confirm them, by the replica's read id. */
  private readonly reads = new Map<number, { readonly query: Query; readonly waiter: Waiter<QueryResult> }>();
  /** Configuration changes proposed here, by request, with the ballot they were proposed under. */
  private readonly configChanges = new Map<string, { readonly ballot: Ballot | undefined; readonly waiter: Waiter<Configuration> }>();

  /** Joins the callers of `command` if it was proposed and not yet answered: it waits for the same outcome. */
  joinCommand(command: Command, waiter: Waiter<Outcome>): boolean {
    const waiting = this.commands.get(waiterKey(command));
    if (waiting === undefined) return false;
    waiting.push(waiter);
    return true;
  }

  /** Waits for the outcome of `command`, just proposed. */
  awaitCommand(command: Command, waiter: Waiter<Outcome>): void {
    this.commands.set(waiterKey(command), [waiter]);
  }

  commandApplied(command: Command, outcome: Outcome): void {
    const key = waiterKey(command);
    const waiting = this.commands.get(key);
    if (waiting === undefined) return;
    this.commands.delete(key);
    for (const waiter of waiting) waiter.resolve(outcome);
  }

  commandAborted(command: Command, error: Error): void {
    const key = waiterKey(command);
    for (const waiter of this.commands.get(key) ?? []) waiter.reject(error);
    this.commands.delete(key);
  }

  awaitRead(id: number, query: Query, waiter: Waiter<QueryResult>): void {
    this.reads.set(id, { query, waiter });
  }

  /** The replica confirmed read `id`: its caller gets `serve(query)`. */
  readConfirmed(id: number, serve: (query: Query) => QueryResult): void {
    const pending = this.reads.get(id);
    if (pending === undefined) return;
    this.reads.delete(id);
    pending.waiter.resolve(serve(pending.query));
  }

  readFailed(id: number, error: Error): void {
    this.reads.get(id)?.waiter.reject(error);
    this.reads.delete(id);
  }

  awaitConfigChange(request: string, ballot: Ballot | undefined, waiter: Waiter<Configuration>): void {
    this.configChanges.set(request, { ballot, waiter });
  }

  /** A configuration change was applied: its caller gets the configuration, or `CONFIG_CHANGED` when another came first. */
  configApplied(outcome: AppliedConfig): void {
    const pending = this.configChanges.get(outcome.request);
    if (pending === undefined) return;
    this.configChanges.delete(outcome.request);
    if (outcome.config !== undefined) pending.waiter.resolve(outcome.config);
    else pending.waiter.reject(new ConfigChangeError("CONFIG_CHANGED", `another configuration (${outcome.latest.id}) was chosen first`, outcome.latest.id));
  }

  /** Fails with `EpochChangedError` every configuration change proposed under a leadership other than the current one. */
  forgetOtherLeaderships(status: ReplicaStatus): void {
    // A change proposed under another leadership is no longer tracked by the replica.
    for (const [request, pending] of this.configChanges) {
      if (status.role === "leader" && status.ballot !== undefined && pending.ballot !== undefined && ballotsEqual(pending.ballot, status.ballot)) continue;
      this.configChanges.delete(request);
      pending.waiter.reject(new EpochChangedError(status.leader));
    }
  }

  failAll(error: Error): void {
    for (const waiting of this.commands.values()) for (const waiter of waiting) waiter.reject(error);
    this.commands.clear();
    for (const read of this.reads.values()) read.waiter.reject(error);
    this.reads.clear();
    for (const change of this.configChanges.values()) change.waiter.reject(error);
    this.configChanges.clear();
  }
}

function waiterKey(command: Command): string {
  return `${command.session}\u0000${command.seq}`;
}
