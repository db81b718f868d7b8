import { randomBytes } from "node:crypto";
import { ClientError, ResumingStream, SynodClient, type SynodClientOptions } from "@synod/transport-ws";
import { type LockError, type LockErrorCode, LockOperationError } from "../errors.js";
import type { LockInfo, LockMode, LockQueryResult, LockResult, SessionInfo } from "../ops.js";
import type { LockEventBatch } from "../service/event-feed.js";
import type { AwaitGrantResult } from "../service/handler.js";

export interface LockClientOptions extends SynodClientOptions {
  /**
   * How much faster than ours a server's clock may run (default 0.01, 1 %).
   * The local deadline is shortened by it, so the client gives a lock up
   * before any server can give it to someone else.
   */
  readonly clockDrift?: number;
}

export interface SessionOptions {
  /** Session TTL (default 10 s; at least the cluster's minimum, 1.5× its election timeout). */
  readonly ttlMs?: number;
}

export interface AcquireOptions {
  readonly mode?: LockMode;
  /** Create (or expect) a semaphore with this many permits. */
  readonly limit?: number;
  /** Wait in the FIFO queue (default true); false: fail at once with `LOCK_BUSY` when taken. */
  readonly wait?: boolean;
  /** Give up waiting after this long: the wait is cancelled and `LOCK_TIMEOUT` thrown. */
  readonly timeoutMs?: number;
  /** Cancels the wait (the call rejects with the signal's reason). */
  readonly signal?: AbortSignal;
  /** Chubby's lock-delay for this lock (see `AcquireOp`). */
  readonly lockDelayMs?: number;
}

/** The session's health as the client sees it. */
export type SessionState = "safe" | "jeopardy" | "expired";

type Listener = (state: SessionState) => void;

const LOCK_CODES = new Set<string>(["SESSION_NOT_FOUND", "SESSION_EXISTS", "SESSION_AUTH_FAILED", "TTL_TOO_SHORT", "LOCK_KIND_MISMATCH", "ALREADY_HOLDING", "ALREADY_WAITING", "INVALID_REQUEST"]);

/**
 * A client of the lock service. Sessions (`session()`) hold locks; the client
 * keeps each session alive with the leader and keeps a conservative local
 * deadline for it (from the send time of the last answered keepalive,
 * shortened for clock drift).
 */
export class LockClient {
  readonly client: SynodClient;
  readonly clockDrift: number;
  /** How long one `await-grant` read may wait on the server: well inside one request's time limit. */
  readonly grantPollMs: number;

  constructor(options: LockClientOptions) {
    this.client = new SynodClient(options);
    this.clockDrift = options.clockDrift ?? 0.01;
    this.grantPollMs = Math.max(1, Math.min(10_000, Math.floor((options.requestTimeoutMs ?? 5_000) / 2)));
  }

  /** Opens a session (on whichever replica leads). */
  async session(options: SessionOptions = {}): Promise<LockSession> {
    const id = randomBytes(16).toString("hex");
    const secret = randomBytes(24).toString("hex");
    const ttlMs = options.ttlMs ?? 10_000;
    const sentAt = performance.now();
    await this.command({ type: "open-session", id, ttlMs, secret });
    return new LockSession(this, id, secret, ttlMs, sentAt);
  }

  /** Resumes a session opened elsewhere (another process or replica), from its id and secret. */
  async resume(id: string, secret: string): Promise<LockSession> {
    const sentAt = performance.now();
    const answer = await this.keepalive(id, secret);
    const session = new LockSession(this, id, secret, answer.ttlMs, sentAt);
    session.renewed(sentAt, answer.remainingMs);
    return session;
  }

  /** Every lock (or those under `prefix`) with holders and waiters, linearizable. */
  async locks(prefix?: string): Promise<readonly LockInfo[]> {
    const result = await this.query({ type: "locks", ...(prefix === undefined ? {} : { prefix }) });
    return (result as Extract<LockQueryResult, { type: "locks" }>).locks;
  }

  /** One lock's holders and waiters (linearizable); `nextEvent` is where a watch continues from this read. */
  async lock(name: string): Promise<LockInfo & { readonly nextEvent: number }> {
    return (await this.query({ type: "lock", lock: name })) as Extract<LockQueryResult, { type: "lock" }>;
  }

  async sessions(): Promise<readonly SessionInfo[]> {
    return ((await this.query({ type: "sessions" })) as Extract<LockQueryResult, { type: "sessions" }>).sessions;
  }

  /** Chubby's CheckSequencer: is `token` a current grant of `lock`? */
  async checkToken(lock: string, token: number): Promise<{ valid: boolean; highestToken: number; reason?: string }> {
    const result = (await this.query({ type: "check-token", lock, token })) as Extract<LockQueryResult, { type: "check-token" }>;
    return { valid: result.valid, highestToken: result.highestToken, ...(result.reason === undefined ? {} : { reason: result.reason }) };
  }

  /** An operator's release of a lock's holders (or one session's hold), recorded with `reason`. Returns the ended tokens. */
  async forceRelease(lock: string, reason: string, session?: string): Promise<readonly number[]> {
    const result = await this.command({ type: "force-release", lock, reason, ...(session === undefined ? {} : { session }) });
    return (result as Extract<LockResult, { type: "forced" }>).tokens;
  }

  /**
   * Watches lock events (acquired, released with its reason, queued,
   * dequeued, session ends) for one lock or a prefix, from event index `from`
   * (default: now): an async iterator of batches, in order, each event once,
   * across disconnects. The first batch of a watch from now has no events.
   */
  watch(options: { readonly lock?: string; readonly prefix?: string; readonly from?: number; readonly signal?: AbortSignal } = {}): ResumingStream<LockEventBatch> {
    return new ResumingStream<LockEventBatch>(this.client, {
      from: options.from ?? 0,
      query: (position) => ({ ...(options.lock === undefined ? {} : { lock: options.lock }), ...(options.prefix === undefined ? {} : { prefix: options.prefix }), from: position }),
      read: (data) => {
        const batch = data as LockEventBatch;
        return { item: batch, next: batch.next };
      },
      isProgress: (batch, previous) => batch.events.length === 0 && batch.next === previous,
      fatal: (error) => (["DISCONNECTED", "WATCH_SLOW", "STOPPED", "NO_LEADER", "ENDED"].includes(error.code) ? undefined : error),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
  }

  /** Leader election on lock `name`: campaign, observe, resign. */
  election(name: string): Election {
    return new Election(this, name);
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  /** @internal */
  async command(op: Record<string, unknown>, signal?: AbortSignal): Promise<LockResult> {
    const result = await this.call(() => this.client.propose<LockResult>(op, signal === undefined ? {} : { signal }));
    if (result.type === "error") throw new LockOperationError(result.error);
    return result;
  }

  /** @internal */
  async keepalive(id: string, secret: string, signal?: AbortSignal): Promise<{ ttlMs: number; remainingMs: number }> {
    return this.call(() => this.client.read<{ ttlMs: number; remainingMs: number }>({ type: "keepalive", session: id, secret }, signal === undefined ? {} : { signal }));
  }

  /** @internal */
  async awaitGrant(id: string, secret: string, lock: string, timeoutMs: number, signal?: AbortSignal): Promise<AwaitGrantResult> {
    // Linearizable: served by the leader, which confirms it is up to date before any answer but a grant.
    return this.call(() => this.client.read<AwaitGrantResult>({ type: "await-grant", session: id, secret, lock, timeoutMs }, signal === undefined ? {} : { signal }));
  }

  private async query(query: Record<string, unknown>): Promise<LockQueryResult> {
    const result = await this.call(() => this.client.read<LockQueryResult>(query));
    if (result.type === "error") throw new LockOperationError(result.error);
    return result;
  }

  private async call<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (error instanceof ClientError && LOCK_CODES.has(error.code)) throw new LockOperationError({ ...error.details, code: error.code, message: error.message } as unknown as LockError);
      throw error;
    }
  }
}

/** Who leads an election: the holder's session and token, or nobody. */
export interface Leadership {
  readonly leader: string | null;
  readonly token: number;
}

/**
 * Leader election on one lock's FIFO queue: `campaign` waits to lead (the
 * grant's token numbers the term: fence with it), `resign` steps down and
 * lets the next candidate in, `observe` follows who leads.
 */
export class Election {
  constructor(
    private readonly client: LockClient,
    readonly name: string,
  ) {}

  /** Waits until `session` leads; the returned lock's signal aborts when leadership may be lost. */
  campaign(session: LockSession, options: { readonly signal?: AbortSignal; readonly timeoutMs?: number } = {}): Promise<HeldLock> {
    return session.acquire(this.name, { mode: "exclusive", wait: true, ...options });
  }

  /** Steps down (the next candidate leads in the same log entry). */
  async resign(leadership: HeldLock): Promise<void> {
    await leadership.release();
  }

  /** The current leader, then every change, until the signal aborts. */
  async *observe(options: { readonly signal?: AbortSignal } = {}): AsyncGenerator<Leadership> {
    const info = await this.client.lock(this.name);
    const holder = info.holders[0];
    yield holder === undefined ? { leader: null, token: 0 } : { leader: holder.session, token: holder.token };
    for await (const batch of this.client.watch({ lock: this.name, from: info.nextEvent, ...(options.signal === undefined ? {} : { signal: options.signal }) })) {
      for (const event of batch.events) {
        if (event.type === "acquired") yield { leader: event.session, token: event.token };
        else if (event.type === "released") yield { leader: null, token: event.token };
      }
    }
  }
}

/** A lock this session holds. `signal` aborts as soon as it may be lost: stop using what it guards. */
export interface HeldLock {
  readonly name: string;
  /** The fencing token: pass it to whatever the lock guards (`checkToken`, a fenced write). */
  readonly token: number;
  /**
   * Aborts as soon as the lock may be lost. Reading it checks the local
   * deadline against the clock first, so it is right even when timers could
   * not run (a process paused, an event loop blocked).
   */
  readonly signal: AbortSignal;
  /** Whether the lock is still surely held, by the local deadline, now. */
  readonly held: boolean;
  /** Releases it (voluntarily: any lock-delay does not apply). */
  release(): Promise<void>;
}

/**
 * A session: kept alive every TTL / 3 while open. Its state moves to
 * `jeopardy` when keepalives go unanswered, back to `safe` when one is
 * answered, and to `expired` when the cluster says the session is gone. The
 * locks' signals abort when the local deadline passes without a renewal:
 * from then on the lock may already be someone else's.
 */
export class LockSession {
  private state: SessionState = "safe";
  private readonly listeners = new Set<Listener>();
  private readonly held = new Map<string, AbortController>();
  /** Withdrawals of abandoned acquires still under way, by lock. */
  private readonly abandoning = new Map<string, Promise<void>>();
  private localDeadline: number;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Fires at the local deadline, whether or not keepalives still run. */
  private deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  constructor(
    private readonly owner: LockClient,
    readonly id: string,
    readonly secret: string,
    readonly ttlMs: number,
    openedAt: number,
  ) {
    this.localDeadline = openedAt + ttlMs * (1 - owner.clockDrift);
    this.armDeadline();
    this.schedule();
  }

  get status(): SessionState {
    return this.state;
  }

  /** Milliseconds until the local deadline (negative once it passed). */
  get remainingMs(): number {
    return this.localDeadline - performance.now();
  }

  on(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async acquire(lock: string, options: AcquireOptions = {}): Promise<HeldLock> {
    options.signal?.throwIfAborted();
    // A withdrawal of an earlier attempt at this lock still under way would release this one's grant.
    await this.abandoning.get(lock);
    const wait = options.wait ?? true;
    const base = { session: this.id, secret: this.secret, lock };
    let result: LockResult;
    try {
      result = await this.owner.command(
        {
          type: "acquire",
          ...base,
          mode: options.mode ?? "exclusive",
          wait,
          ...(options.limit === undefined ? {} : { limit: options.limit }),
          ...(options.lockDelayMs === undefined ? {} : { lockDelayMs: options.lockDelayMs }),
        },
        options.signal,
      );
    } catch (error) {
      // Refused for sure: nothing to undo. Otherwise (no answer, aborted) the acquire may have queued or
      // even been granted while the caller is told it failed: withdraw it, so no grant goes unclaimed.
      if (!(error instanceof LockOperationError)) void this.abandon(lock);
      throw error;
    }
    if (result.type === "granted") return this.hold(lock, result.token);
    if (result.type === "busy") throw new LockWaitError("LOCK_BUSY", `${lock} is taken`);
    if (result.type !== "queued") throw new LockWaitError("UNEXPECTED", `unexpected answer ${result.type}`);
    const deadline = options.timeoutMs === undefined ? Number.POSITIVE_INFINITY : performance.now() + options.timeoutMs;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0 || options.signal?.aborted === true) {
        await this.owner.command({ type: "cancel", ...base }).catch(() => undefined);
        // Granted between the last look and the cancel? Then it is ours: hand it over rather than leak it.
        const state = await this.owner.awaitGrant(this.id, this.secret, lock, 1);
        if (state.type === "granted") return this.hold(lock, state.token);
        options.signal?.throwIfAborted();
        throw new LockWaitError("LOCK_TIMEOUT", `no grant of ${lock} within ${options.timeoutMs} ms; the wait was cancelled`);
      }
      let state: AwaitGrantResult;
      try {
        state = await this.owner.awaitGrant(this.id, this.secret, lock, Math.max(1, Math.min(this.owner.grantPollMs, Math.ceil(left))), options.signal);
      } catch (error) {
        // An abort ends the wait through the cancel above.
        if (aborted(options.signal)) continue;
        void this.abandon(lock);
        throw error;
      }
      if (state.type === "granted") return this.hold(lock, state.token);
      if (state.type === "session-gone") {
        this.expire();
        throw new LockOperationError({ code: "SESSION_NOT_FOUND", message: `session ${this.id} expired while waiting for ${lock}`, session: this.id });
      }
      if (state.type === "not-waiting") throw new LockWaitError("LOCK_WAIT_ENDED", `the wait for ${lock} ended without a grant (cancelled)`);
    }
  }

  /**
   * Best effort: withdraws a wait (or releases a grant) the caller no longer
   * expects. The next acquire of the lock waits for it to finish.
   */
  private abandon(lock: string): Promise<void> {
    const withdrawal = this.withdraw(lock).finally(() => {
      if (this.abandoning.get(lock) === withdrawal) this.abandoning.delete(lock);
    });
    this.abandoning.set(lock, withdrawal);
    return withdrawal;
  }

  private async withdraw(lock: string): Promise<void> {
    const base = { session: this.id, secret: this.secret, lock };
    await this.owner.command({ type: "cancel", ...base }).catch(() => undefined);
    const state = await this.owner.awaitGrant(this.id, this.secret, lock, 1).catch(() => undefined);
    if (state?.type === "granted") await this.owner.command({ type: "release", ...base }).catch(() => undefined);
  }

  /** Closes the session: its locks are released and its waits withdrawn. */
  async close(): Promise<void> {
    this.stop();
    if (this.deadlineTimer !== undefined) clearTimeout(this.deadlineTimer);
    for (const controller of this.held.values()) controller.abort(new Error("the session was closed"));
    this.held.clear();
    await this.owner.command({ type: "close-session", id: this.id, secret: this.secret }).catch((error: unknown) => {
      if (!(error instanceof LockOperationError && error.code === "SESSION_NOT_FOUND")) throw error;
    });
  }

  /** Stops keeping the session alive, without closing it (it expires after its TTL; held locks' signals abort at the local deadline). */
  stop(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
  }

  /** @internal the answer to a keepalive sent at `sentAt` */
  renewed(sentAt: number, remainingMs: number): void {
    const deadline = sentAt + remainingMs * (1 - this.owner.clockDrift);
    if (deadline > this.localDeadline) {
      this.localDeadline = deadline;
      this.armDeadline();
    }
    if (this.state === "jeopardy" && this.remainingMs > 0) this.setState("safe");
  }

  private hold(lock: string, token: number): HeldLock {
    const controller = new AbortController();
    if (this.remainingMs <= 0) controller.abort(new Error("the session's local deadline passed"));
    this.held.set(lock, controller);
    const check = () => {
      if (!controller.signal.aborted && this.remainingMs <= 0) this.deadlinePassed();
    };
    return {
      name: lock,
      token,
      get signal() {
        check();
        return controller.signal;
      },
      get held() {
        check();
        return !controller.signal.aborted;
      },
      release: async () => {
        this.held.get(lock)?.abort(new Error("released"));
        this.held.delete(lock);
        await this.owner.command({ type: "release", session: this.id, secret: this.secret, lock });
      },
    };
  }

  private armDeadline(): void {
    if (this.deadlineTimer !== undefined) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = setTimeout(() => {
      if (this.remainingMs <= 0 && this.state !== "expired") this.deadlinePassed();
    }, Math.max(0, this.remainingMs) + 1);
    this.deadlineTimer.unref?.();
  }

  private schedule(): void {
    if (this.closed) return;
    const interval = Math.max(10, Math.floor(this.ttlMs / 3));
    const untilDeadline = this.remainingMs;
    this.timer = setTimeout(() => void this.beat(), Math.max(1, Math.min(interval, untilDeadline)));
    this.timer.unref?.();
  }

  private async beat(): Promise<void> {
    if (this.closed) return;
    if (this.remainingMs <= 0) this.deadlinePassed();
    const sentAt = performance.now();
    try {
      // Bounded, so that the next beat (and the local deadline) is never late behind a hung call.
      const answer = await this.owner.keepalive(this.id, this.secret, AbortSignal.timeout(Math.max(50, Math.floor(this.ttlMs / 3))));
      this.renewed(sentAt, answer.remainingMs);
    } catch (error) {
      if (error instanceof LockOperationError && error.code === "SESSION_NOT_FOUND") return this.expire();
      if (this.state === "safe") this.setState("jeopardy");
    }
    if (this.remainingMs <= 0) this.deadlinePassed();
    this.schedule();
  }

  /** The local deadline passed without a renewal: every lock may be lost. */
  private deadlinePassed(): void {
    if (this.state === "safe") this.setState("jeopardy");
    for (const controller of this.held.values()) controller.abort(new Error("the session's local deadline passed: the lock may be held by another"));
  }

  private expire(): void {
    this.stop();
    if (this.deadlineTimer !== undefined) clearTimeout(this.deadlineTimer);
    for (const controller of this.held.values()) controller.abort(new Error("the session expired"));
    this.held.clear();
    this.setState("expired");
  }

  private setState(state: SessionState): void {
    if (this.state === state || this.state === "expired") return;
    this.state = state;
    for (const listener of this.listeners) listener(state);
  }
}

function aborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

/** An acquire that ended without the lock: `LOCK_BUSY`, `LOCK_TIMEOUT`, `LOCK_WAIT_ENDED`. */
export class LockWaitError extends Error {
  constructor(
    readonly code: "LOCK_BUSY" | "LOCK_TIMEOUT" | "LOCK_WAIT_ENDED" | "UNEXPECTED",
    message: string,
  ) {
    super(message);
    this.name = "LockWaitError";
  }
}

export type { LockErrorCode };
