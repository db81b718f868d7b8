import type { Ballot } from "./ballot.js";
import type { ConfigChange } from "./config.js";

/**
 * What a log slot holds. A slot is one Basic Paxos instance; the value chosen
 * there is one of these.
 */
export type Value = NoopValue | BatchValue | ConfigValue | CheckValue;

/** Fills a gap found in Phase 1, so that later slots can be applied. */
export interface NoopValue {
  readonly type: "noop";
}

/**
 * A runtime consistency check (Paxos Made Live §6.2): every replica that
 * applies this slot digests its state there and tells the others; replicas
 * whose digest differs from a majority's have diverged. Changes no state.
 */
export interface CheckValue {
  readonly type: "check";
}

/**
 * A configuration change, alone in its slot: chosen at slot i, it governs
 * slots from i + α on (see `ConfigLog`). `request` lets its proposer find
 * its outcome when the slot is applied.
 */
export interface ConfigValue {
  readonly type: "config";
  readonly change: ConfigChange;
  readonly request: string;
}

/**
 * Many client commands decided by one Paxos instance (batching). `time` is the
 * leader's log clock when it cut the batch: a cluster-wide, never-decreasing
 * time that session expiry is decided by, so that every replica expires the
 * same sessions at the same slot, whatever its own clock says.
 */
export interface BatchValue {
  readonly type: "batch";
  readonly time: number;
  readonly commands: readonly Command[];
  /**
   * The ballot of the leader that cut the batch: the epoch its commands were
   * accepted under (Paxos Made Live §5.3). Absent in logs from before epochs.
   */
  readonly epoch?: Ballot;
}

/**
 * A client command. `session` and `seq` make it exactly-once: the replicated
 * session table keeps each session's last sequence number and result, so a
 * retry of the same `(session, seq)` returns the first result instead of
 * applying twice.
 */
export interface Command {
  readonly session: string;
  readonly seq: number;
  readonly body: CommandBody;
}

export type CommandBody =
  /** Registers `session`; commands of unknown sessions are refused as expired. */
  | { readonly type: "open-session" }
  /** Ends `session`; its cached result is forgotten. */
  | { readonly type: "close-session" }
  /** One application operation. */
  | { readonly type: "op"; readonly op: unknown }
  /**
   * MultiOp (Paxos Made Live §4.4): if every `guard` test holds, apply `top`,
   * else apply `fop`, atomically in one slot.
   */
  | {
      readonly type: "multi";
      readonly guard: readonly unknown[];
      readonly top: readonly unknown[];
      readonly fop: readonly unknown[];
    };

/** One slot as an acceptor holds it. `chosen` slots can never change. */
export interface SlotRecord {
  readonly slot: number;
  readonly ballot: Ballot;
  readonly value: Value;
  readonly chosen: boolean;
}

/** A chosen slot, handed to the state-machine host in slot order. */
export interface ChosenEntry {
  readonly slot: number;
  readonly value: Value;
}

export const NOOP: NoopValue = Object.freeze({ type: "noop" });
export const CHECK: CheckValue = Object.freeze({ type: "check" });

/**
 * Approximate encoded size of a value in bytes, used for the per-peer byte
 * windows and batch limits. It is an estimate, cheap on the hot path: exact
 * sizes belong to the codec of a transport.
 */
export function valueSize(value: Value): number {
  if (value.type === "noop" || value.type === "check") return 16;
  if (value.type === "config") return 64 + value.request.length + estimateSize(value.change);
  let bytes = 32;
  for (const command of value.commands) bytes += commandSize(command);
  return bytes;
}

export function commandSize(command: Command): number {
  return 32 + command.session.length + estimateSize(command.body);
}

function estimateSize(input: unknown): number {
  // Iterative, so a deeply nested value cannot overflow the stack.
  let bytes = 0;
  const stack: unknown[] = [input];
  while (stack.length > 0) {
    const value = stack.pop();
    switch (typeof value) {
      case "string":
        bytes += value.length + 2;
        break;
      case "number":
        bytes += 8;
        break;
      case "boolean":
        bytes += 5;
        break;
      case "object": {
        if (value === null) {
          bytes += 4;
        } else if (value instanceof Uint8Array) {
          bytes += value.byteLength;
        } else if (Array.isArray(value)) {
          bytes += 2 + value.length;
          for (const item of value) stack.push(item);
        } else {
          bytes += 2;
          for (const key in value) {
            bytes += key.length + 4;
            stack.push((value as Record<string, unknown>)[key]);
          }
        }
        break;
      }
      default:
        bytes += 4;
    }
  }
  return bytes;
}
