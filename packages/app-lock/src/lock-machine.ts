import { type ApplyContext, DeadlineHeap, type StateMachine, invariant } from "@synod/core";
import { type LockError, lockErrors } from "./errors.js";
import type {
  AcquireOp,
  ErrorResult,
  Holder,
  LockEvent,
  LockInfo,
  LockMode,
  LockOp,
  LockQueryOp,
  LockQueryResult,
  LockResult,
  ReleaseReason,
  SessionInfo,
  Waiter,
} from "./ops.js";
import { parseLockOp, parseLockQuery } from "./schema.js";
import { decodeLockSnapshot, encodeLockSnapshot } from "./snapshot.js";

export interface LockMachineOptions {
  /**
   * The shortest session TTL accepted: 1.5× the election timeout, so that a
   * leader change alone never expires a live session. It decides results, so
   * every replica must use the same value.
   */
  readonly minSessionTtlMs?: number;
  /** How many events to keep for watchers (default 100 000). */
  readonly retainEvents?: number;
}

/** Grants within one slot are numbered below this: token = slot × GRANTS_PER_SLOT + n. */
export const GRANTS_PER_SLOT = 2 ** 20;

interface Session {
  readonly id: string;
  readonly ttlMs: number;
  readonly secretHash: string;
  deadline: number;
  readonly holds: Set<string>;
  readonly waits: Set<string>;
}

interface Lock {
  readonly name: string;
  readonly limit: number | undefined;
  /** By session, in grant order. */
  readonly holders: Map<string, Holder>;
  /** FIFO. */
  waiters: Waiter[];
  lockDelayMs: number;
  delayedUntil: number;
  highestToken: number;
}

/** No new command has been seen yet. */
const NO_COMMAND = { slot: -1, session: "", seq: -1 };

/**
 * The lock service's replicated state: Chubby-style sessions, mutexes
 * (exclusive or shared) and semaphores, FIFO waiters, fencing tokens and
 * lock-delay, behind core's `StateMachine` interface.
 *
 * **Time.** Every command carries its batch's log time. At the start of each
 * command the machine expires the sessions due by then (releasing their
 * locks involuntarily and withdrawing their waits), ends lock-delays that ran
 * out, and grants what became free, all before the command itself runs. So
 * a grant only ever goes to a session that is live at that moment, and a
 * grant happens in the very entry that releases or expires the previous
 * holder.
 *
 * **Tokens.** The fencing token of a grant is `slot × 2^20 + n`, where
 * `slot` is the log slot of the entry that granted it and `n` counts grants
 * within that slot: tokens rise strictly across locks, leaders and restarts
 * (a slot is never reused), and a token is never issued twice.
 *
 * **Fairness.** Waiters are served in FIFO order and a new acquire never
 * overtakes a waiter (no barging): readers queued behind a writer wait for
 * it, so a writer is never starved.
 *
 * `apply`, `test` and `query` never throw on any input: bad requests are
 * `INVALID_REQUEST` results.
 */
export class LockMachine implements StateMachine<LockOp, never, LockResult, LockQueryOp, LockQueryResult> {
  private sessions = new Map<string, Session>();
  private locks = new Map<string, Lock>();
  private readonly expiries = new DeadlineHeap<string>();
  /** Locks whose lock-delay is running. */
  private delayed = new Set<string>();
  private events: LockEvent[] = [];
  private nextEventIndex = 1;
  /** The slot of the last grant and how many grants it made (for tokens). */
  private grantSlot = -1;
  private grantsInSlot = 0;
  private command = NO_COMMAND;
  private now = 0;

  readonly minSessionTtlMs: number;
  readonly retainEvents: number;

  constructor(options: LockMachineOptions = {}) {
    this.minSessionTtlMs = options.minSessionTtlMs ?? 1_500;
    this.retainEvents = options.retainEvents ?? 100_000;
  }

  // ------------------------------------------------------------ StateMachine

  apply(input: LockOp, context: ApplyContext): LockResult {
    this.enter(context);
    const parsed = parseLockOp(input);
    if (!parsed.ok) return failed(lockErrors.invalidRequest(parsed.reason));
    const op = parsed.value;
    switch (op.type) {
      case "open-session":
        return this.openSession(op.id, op.ttlMs, op.secretHash);
      case "renew-sessions":
        return this.renew(op.ids);
      case "close-session":
        return this.owned(op.id, op.secretHash) ?? this.closeSession(op.id);
      case "tick":
        return { type: "tick" };
      case "acquire":
        return this.owned(op.session, op.secretHash) ?? this.acquire(op, context.slot);
      case "release":
        return this.owned(op.session, op.secretHash) ?? this.release(op.session, op.lock, context.slot);
      case "cancel":
        return this.owned(op.session, op.secretHash) ?? this.cancel(op.session, op.lock, context.slot);
      case "force-release":
        return this.forceRelease(op.lock, op.session, op.reason, context.slot);
    }
  }

  /** Locks have no MultiOp guards: every guard fails. */
  test(_test: never, context: ApplyContext): boolean {
    this.enter(context);
    return false;
  }

  query(input: LockQueryOp): LockQueryResult {
    const parsed = parseLockQuery(input);
    if (!parsed.ok) return failed(lockErrors.invalidRequest(parsed.reason));
    const query = parsed.value;
    switch (query.type) {
      case "sessions":
        return { type: "sessions", sessions: [...this.sessions.keys()].sort().map((id) => this.sessionInfo(this.sessions.get(id) as Session)) };
      case "session": {
        const session = this.sessions.get(query.id);
        return session === undefined ? failed(lockErrors.sessionNotFound(query.id)) : { type: "session", ...this.sessionInfo(session) };
      }
      case "locks": {
        const prefix = query.prefix ?? "";
        const names = [...this.locks.keys()].filter((name) => name.startsWith(prefix)).sort();
        return { type: "locks", locks: names.map((name) => lockInfo(this.locks.get(name) as Lock)) };
      }
      case "lock": {
        const lock = this.locks.get(query.lock);
        return { type: "lock", nextEvent: this.nextEventIndex, ...(lock === undefined ? emptyLockInfo(query.lock) : lockInfo(lock)) };
      }
      case "check-token":
        return this.checkToken(query.lock, query.token);
      case "events": {
        const events = this.eventsSince(query.from, query.limit ?? 1_000);
        const first = this.events[0]?.index ?? this.nextEventIndex;
        return { type: "events", next: (events.at(-1)?.index ?? Math.max(query.from, first) - 1) + 1, events };
      }
    }
  }

  snapshot(): () => Uint8Array {
    this.command = NO_COMMAND;
    const state = {
      now: this.now,
      nextEventIndex: this.nextEventIndex,
      grantSlot: this.grantSlot,
      grantsInSlot: this.grantsInSlot,
      sessions: [...this.sessions.values()].map((session) => ({ id: session.id, ttlMs: session.ttlMs, secretHash: session.secretHash, deadline: session.deadline })),
      locks: [...this.locks.values()].map((lock) => ({ ...lockInfo(lock), limit: lock.limit ?? null })),
      events: [...this.events],
    };
    return () => encodeLockSnapshot(state);
  }

  /** Replaces the state with a snapshot's; throws (changing nothing) on bad bytes. */
  restore(data: Uint8Array): void {
    const state = decodeLockSnapshot(data);
    const sessions = new Map<string, Session>();
    for (const session of state.sessions) sessions.set(session.id, { ...session, holds: new Set(), waits: new Set() });
    const locks = new Map<string, Lock>();
    const delayed = new Set<string>();
    for (const info of state.locks) {
      const lock: Lock = {
        name: info.name,
        limit: info.limit ?? undefined,
        holders: new Map(info.holders.map((holder) => [holder.session, holder])),
        waiters: [...info.waiters],
        lockDelayMs: info.lockDelayMs,
        delayedUntil: info.delayedUntil,
        highestToken: info.highestToken,
      };
      locks.set(lock.name, lock);
      for (const holder of lock.holders.values()) sessions.get(holder.session)?.holds.add(lock.name);
      for (const waiter of lock.waiters) sessions.get(waiter.session)?.waits.add(lock.name);
      if (lock.delayedUntil > 0) delayed.add(lock.name);
    }
    this.sessions = sessions;
    this.locks = locks;
    this.delayed = delayed;
    this.expiries.rebuild([...sessions.values()].map((session) => ({ at: session.deadline, id: session.id })));
    this.events = [...state.events];
    this.nextEventIndex = state.nextEventIndex;
    this.grantSlot = state.grantSlot;
    this.grantsInSlot = state.grantsInSlot;
    this.now = state.now;
    this.command = NO_COMMAND;
  }

  /** O(state): a canonical rendering of everything that decides results. For consistency checks and the simulator. */
  digest(): string {
    const sessions = [...this.sessions.keys()].sort().map((id) => {
      const session = this.sessions.get(id) as Session;
      return [id, session.ttlMs, session.deadline, session.secretHash];
    });
    const locks = [...this.locks.keys()].sort().map((name) => lockInfo(this.locks.get(name) as Lock));
    return `lock1:${fnv1a(JSON.stringify([this.nextEventIndex, this.grantSlot, this.grantsInSlot, sessions, locks]))}`;
  }

  /** Cross-checks sessions against locks (holds, waits, no double entries). Throws `InvariantError`. */
  checkInvariants(): void {
    for (const lock of this.locks.values()) {
      const exclusive = [...lock.holders.values()].filter((holder) => holder.mode === "exclusive").length;
      if (lock.limit === undefined) invariant(exclusive === 0 || lock.holders.size === 1, () => `${lock.name} has an exclusive holder among ${lock.holders.size}`);
      else invariant(lock.holders.size <= lock.limit, () => `${lock.name} has ${lock.holders.size} holders over ${lock.limit} permits`);
      for (const holder of lock.holders.values()) {
        invariant(this.sessions.get(holder.session)?.holds.has(lock.name) === true, () => `${lock.name} held by ${holder.session}, which does not know it`);
        invariant(holder.token <= lock.highestToken, () => `${lock.name} holder token above the highest`);
      }
      const waiting = new Set(lock.waiters.map((waiter) => waiter.session));
      invariant(waiting.size === lock.waiters.length, () => `${lock.name} has a session queued twice`);
      for (const session of waiting) {
        invariant(!lock.holders.has(session), () => `${session} both holds and waits for ${lock.name}`);
        invariant(this.sessions.get(session)?.waits.has(lock.name) === true, () => `${session} waits for ${lock.name} without knowing it`);
      }
      invariant(lock.holders.size > 0 || lock.waiters.length > 0 || lock.delayedUntil > 0, () => `${lock.name} is empty but kept`);
    }
    for (const session of this.sessions.values()) {
      for (const name of session.holds) invariant(this.locks.get(name)?.holders.has(session.id) === true, () => `${session.id} thinks it holds ${name}`);
      for (const name of session.waits) invariant(this.locks.get(name)?.waiters.some((waiter) => waiter.session === session.id) === true, () => `${session.id} thinks it waits for ${name}`);
    }
  }

  // ------------------------------------------------------------ reads outside the log

  /** The log time of the last command applied. */
  get logTime(): number {
    return this.now;
  }

  /** When (log time) the first session expires unless renewed; undefined without sessions. */
  get nextDeadline(): number | undefined {
    return this.expiries.peek((id, at) => this.sessions.get(id)?.deadline === at);
  }

  /** When (log time) the first running lock-delay ends; undefined when none runs. */
  get nextDelayEnd(): number | undefined {
    let earliest: number | undefined;
    for (const name of this.delayed) {
      const until = this.locks.get(name)?.delayedUntil ?? 0;
      if (earliest === undefined || until < earliest) earliest = until;
    }
    return earliest;
  }

  /** The session, for the server's checks (secret, liveness); undefined when unknown or expired. */
  session(id: string): { readonly ttlMs: number; readonly deadline: number; readonly secretHash: string } | undefined {
    return this.sessions.get(id);
  }

  /** Events from index `from` on (at most `limit`; from the oldest kept when `from` is older). */
  eventsSince(from: number, limit = 1_000): LockEvent[] {
    const first = this.events[0]?.index ?? this.nextEventIndex;
    const start = Math.max(0, from - first);
    return this.events.slice(start, start + limit);
  }

  /** The index the next event will get. */
  get eventIndex(): number {
    return this.nextEventIndex;
  }

  // ------------------------------------------------------------ commands

  /** Starts a new command when the context names one: expiries, lock-delays and grants due at its log time. */
  private enter(context: ApplyContext): void {
    const current = this.command;
    if (current.slot === context.slot && current.session === context.session && current.seq === context.seq) return;
    this.command = { slot: context.slot, session: context.session, seq: context.seq };
    if (context.time > this.now) this.now = context.time;
    const touched = new Set<string>();
    for (let id = this.expiries.popDue(this.now, (key, at) => this.sessions.get(key)?.deadline === at); id !== undefined; id = this.expiries.popDue(this.now, (key, at) => this.sessions.get(key)?.deadline === at)) {
      for (const name of this.endSession(id, "expired")) touched.add(name);
    }
    for (const name of [...this.delayed]) {
      const lock = this.locks.get(name);
      if (lock === undefined || lock.delayedUntil > this.now) continue;
      lock.delayedUntil = 0;
      this.delayed.delete(name);
      touched.add(name);
    }
    for (const name of [...touched].sort()) this.grantWaiters(name, context.slot);
    if (this.expiries.size > 2 * this.sessions.size + 64) {
      this.expiries.rebuild([...this.sessions.values()].map((session) => ({ at: session.deadline, id: session.id })));
    }
  }

  /** Refuses a request made in a session's name with the wrong secret (an unknown session is the operation's own business). */
  private owned(id: string, secretHash: string): ErrorResult | undefined {
    const session = this.sessions.get(id);
    return session !== undefined && session.secretHash !== secretHash ? failed(lockErrors.sessionAuthFailed(id)) : undefined;
  }

  private openSession(id: string, ttlMs: number, secretHash: string): LockResult {
    if (ttlMs < this.minSessionTtlMs) return failed(lockErrors.ttlTooShort(ttlMs, this.minSessionTtlMs));
    if (this.sessions.has(id)) return failed(lockErrors.sessionExists(id));
    const session: Session = { id, ttlMs, secretHash, deadline: this.now + ttlMs, holds: new Set(), waits: new Set() };
    this.sessions.set(id, session);
    this.expiries.push(session.deadline, id);
    this.emit({ type: "session-opened", session: id, deadline: session.deadline });
    return { type: "session", id, ttlMs, deadline: session.deadline };
  }

  private renew(ids: readonly string[]): LockResult {
    let renewed = 0;
    let deadline = 0;
    for (const id of ids) {
      const session = this.sessions.get(id);
      if (session === undefined) continue;
      const next = this.now + session.ttlMs;
      if (next > session.deadline) {
        session.deadline = next;
        this.expiries.push(next, id);
      }
      renewed += 1;
      deadline = Math.max(deadline, session.deadline);
    }
    return { type: "renewed", renewed, deadline };
  }

  private closeSession(id: string): LockResult {
    if (!this.sessions.has(id)) return { type: "closed", id, existed: false };
    const touched = this.endSession(id, "closed");
    for (const name of touched.sort()) this.grantWaiters(name, this.command.slot);
    return { type: "closed", id, existed: true };
  }

  /** Ends a session: releases its holds and withdraws its waits; returns the locks to look at for grants. */
  private endSession(id: string, reason: "closed" | "expired"): string[] {
    const session = this.sessions.get(id);
    if (session === undefined) return [];
    const touched: string[] = [];
    for (const name of [...session.holds].sort()) {
      this.dropHolder(this.locks.get(name) as Lock, id, reason === "closed" ? "session-closed" : "session-expired");
      touched.push(name);
    }
    for (const name of [...session.waits].sort()) {
      const lock = this.locks.get(name) as Lock;
      lock.waiters = lock.waiters.filter((waiter) => waiter.session !== id);
      this.emit({ type: "dequeued", lock: name, session: id, reason: reason === "closed" ? "session-closed" : "session-expired", queueLength: lock.waiters.length });
      touched.push(name);
    }
    this.sessions.delete(id);
    this.emit({ type: "session-ended", session: id, reason });
    return touched;
  }

  private acquire(op: AcquireOp, slot: number): LockResult {
    const session = this.sessions.get(op.session);
    if (session === undefined) return failed(lockErrors.sessionNotFound(op.session));
    let lock = this.locks.get(op.lock);
    if (lock !== undefined && lock.limit !== op.limit) return failed(lockErrors.kindMismatch(op.lock, lock.limit));
    if (session.holds.has(op.lock)) return failed(lockErrors.alreadyHolding(op.lock));
    if (session.waits.has(op.lock)) return failed(lockErrors.alreadyWaiting(op.lock));
    if (lock === undefined) {
      lock = { name: op.lock, limit: op.limit, holders: new Map(), waiters: [], lockDelayMs: 0, delayedUntil: 0, highestToken: 0 };
      this.locks.set(op.lock, lock);
    }
    if (op.lockDelayMs !== undefined) lock.lockDelayMs = op.lockDelayMs;
    if (lock.waiters.length === 0 && lock.delayedUntil <= this.now && compatible(lock, op.mode)) {
      const token = this.grant(lock, session, op.mode, slot);
      return { type: "granted", lock: op.lock, token };
    }
    if (!op.wait) {
      const result: LockResult = { type: "busy", lock: op.lock, holders: [...lock.holders.values()], delayedUntil: lock.delayedUntil };
      this.dropIfIdle(lock);
      return result;
    }
    lock.waiters.push({ session: op.session, mode: op.mode, since: this.now });
    session.waits.add(op.lock);
    this.emit({ type: "queued", lock: op.lock, session: op.session, mode: op.mode, queueLength: lock.waiters.length });
    return { type: "queued", lock: op.lock, position: lock.waiters.length };
  }

  private release(sessionId: string, name: string, slot: number): LockResult {
    const lock = this.locks.get(name);
    if (lock === undefined || !lock.holders.has(sessionId)) return { type: "released", lock: name, held: false };
    this.dropHolder(lock, sessionId, "released");
    this.grantWaiters(name, slot);
    return { type: "released", lock: name, held: true };
  }

  private cancel(sessionId: string, name: string, slot: number): LockResult {
    const lock = this.locks.get(name);
    const session = this.sessions.get(sessionId);
    if (lock === undefined || session === undefined || !session.waits.has(name)) return { type: "cancelled", lock: name, waiting: false };
    const wasHead = lock.waiters[0]?.session === sessionId;
    lock.waiters = lock.waiters.filter((waiter) => waiter.session !== sessionId);
    session.waits.delete(name);
    this.emit({ type: "dequeued", lock: name, session: sessionId, reason: "cancelled", queueLength: lock.waiters.length });
    // A cancelled head may have been what held compatible waiters back.
    if (wasHead) this.grantWaiters(name, slot);
    else this.dropIfIdle(lock);
    return { type: "cancelled", lock: name, waiting: true };
  }

  private forceRelease(name: string, sessionId: string | undefined, reason: string, slot: number): LockResult {
    const lock = this.locks.get(name);
    if (lock === undefined) return { type: "forced", lock: name, tokens: [] };
    const tokens: number[] = [];
    for (const holder of [...lock.holders.values()]) {
      if (sessionId !== undefined && holder.session !== sessionId) continue;
      tokens.push(holder.token);
      this.dropHolder(lock, holder.session, "forced", reason);
    }
    this.grantWaiters(name, slot);
    return { type: "forced", lock: name, tokens };
  }

  private dropHolder(lock: Lock, sessionId: string, reason: ReleaseReason, note?: string): void {
    const holder = lock.holders.get(sessionId);
    if (holder === undefined) return;
    lock.holders.delete(sessionId);
    this.sessions.get(sessionId)?.holds.delete(lock.name);
    this.emit({ type: "released", lock: lock.name, session: sessionId, token: holder.token, reason, ...(note === undefined ? {} : { note }) });
    const involuntary = reason === "session-expired" || reason === "forced";
    if (involuntary && lock.lockDelayMs > 0) {
      lock.delayedUntil = Math.max(lock.delayedUntil, this.now + lock.lockDelayMs);
      this.delayed.add(lock.name);
    }
  }

  /** Grants the queue's head while it fits (FIFO, no overtaking), unless a lock-delay runs. */
  private grantWaiters(name: string, slot: number): void {
    const lock = this.locks.get(name);
    if (lock === undefined) return;
    if (lock.delayedUntil <= this.now) {
      for (let head = lock.waiters[0]; head !== undefined && compatible(lock, head.mode); head = lock.waiters[0]) {
        lock.waiters.shift();
        const session = this.sessions.get(head.session) as Session;
        session.waits.delete(name);
        this.grant(lock, session, head.mode, slot);
      }
    }
    this.dropIfIdle(lock);
  }

  private grant(lock: Lock, session: Session, mode: LockMode, slot: number): number {
    if (slot !== this.grantSlot) {
      this.grantSlot = slot;
      this.grantsInSlot = 0;
    }
    const token = slot * GRANTS_PER_SLOT + this.grantsInSlot;
    this.grantsInSlot += 1;
    lock.holders.set(session.id, { session: session.id, mode, token, since: this.now });
    lock.highestToken = token;
    session.holds.add(lock.name);
    this.emit({ type: "acquired", lock: lock.name, session: session.id, mode, token });
    return token;
  }

  /** Forgets a lock nobody holds, waits for, or is kept from (tokens are global, so none can repeat). */
  private dropIfIdle(lock: Lock): void {
    if (lock.holders.size === 0 && lock.waiters.length === 0 && lock.delayedUntil <= this.now) {
      this.locks.delete(lock.name);
      this.delayed.delete(lock.name);
    }
  }

  private checkToken(name: string, token: number): LockQueryResult {
    const lock = this.locks.get(name);
    const highestToken = lock?.highestToken ?? 0;
    if (lock === undefined) return { type: "check-token", valid: false, highestToken, reason: `nobody holds ${JSON.stringify(name)}` };
    const holder = [...lock.holders.values()].find((candidate) => candidate.token === token);
    if (holder !== undefined) return { type: "check-token", valid: true, highestToken };
    return { type: "check-token", valid: false, highestToken, reason: token < highestToken ? `token ${token} is stale: ${highestToken} was granted since` : `token ${token} is not a current grant of ${JSON.stringify(name)}` };
  }

  private emit(event: DistributiveOmit<LockEvent, "index" | "time">): void {
    this.events.push({ ...event, index: this.nextEventIndex, time: this.now } as LockEvent);
    this.nextEventIndex += 1;
    if (this.events.length > this.retainEvents * 1.25) this.events = this.events.slice(this.events.length - this.retainEvents);
  }

  private sessionInfo(session: Session): SessionInfo {
    return { id: session.id, ttlMs: session.ttlMs, deadline: session.deadline, holds: [...session.holds].sort(), waits: [...session.waits].sort() };
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function compatible(lock: Lock, mode: LockMode): boolean {
  if (lock.limit !== undefined) return lock.holders.size < lock.limit;
  if (lock.holders.size === 0) return true;
  if (mode === "exclusive") return false;
  for (const holder of lock.holders.values()) if (holder.mode === "exclusive") return false;
  return true;
}

function lockInfo(lock: Lock): LockInfo {
  return {
    name: lock.name,
    ...(lock.limit === undefined ? {} : { limit: lock.limit }),
    holders: [...lock.holders.values()],
    waiters: [...lock.waiters],
    lockDelayMs: lock.lockDelayMs,
    delayedUntil: lock.delayedUntil,
    highestToken: lock.highestToken,
  };
}

function emptyLockInfo(name: string): LockInfo {
  return { name, holders: [], waiters: [], lockDelayMs: 0, delayedUntil: 0, highestToken: 0 };
}

function failed(error: LockError): ErrorResult {
  return { type: "error", error };
}

/** 32-bit FNV-1a of a string, as 8 hex digits. */
function fnv1a(text: string): string {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index += 1) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, "0");
}
