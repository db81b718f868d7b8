import { SeededRandom } from "@synod/core";
import { describe, expect, it } from "vitest";
import { GRANTS_PER_SLOT, type LockEvent, LockMachine, type LockOp, type LockQueryResult, type LockResult } from "../src/index.js";

type Loose<T> = T extends { secretHash: string } ? Omit<T, "secretHash"> & { secretHash?: string } : T;
/** An operation as tests write it: a session's own secret is filled in unless given. */
type TestOp = Loose<LockOp>;

function withSecret(op: TestOp): LockOp {
  if (op === null || typeof op !== "object") return op as LockOp;
  if (op.type === "acquire" || op.type === "release" || op.type === "cancel") return { ...op, secretHash: op.secretHash ?? `hash-${op.session}` } as LockOp;
  if (op.type === "close-session") return { ...op, secretHash: op.secretHash ?? `hash-${op.id}` };
  return op as LockOp;
}

/** Drives a machine one command per slot, at a log time the test controls. */
class Log {
  readonly machine: LockMachine;
  slot = 0;
  /** Log time is the leader's clock: fractional milliseconds. */
  time = 10_000.25;
  private seq = 0;

  constructor(options: ConstructorParameters<typeof LockMachine>[0] = {}) {
    this.machine = new LockMachine({ minSessionTtlMs: 1_500, ...options });
  }

  /** Applies `op` in the next slot. */
  apply(op: TestOp): LockResult {
    this.slot += 1;
    return this.applyInSlot(op);
  }

  /** Applies `op` as another command of the current slot (a batch). */
  applyInSlot(op: TestOp): LockResult {
    this.seq += 1;
    const result = this.machine.apply(withSecret(op), { slot: this.slot, time: this.time, session: "client", seq: this.seq });
    this.machine.checkInvariants();
    return result;
  }

  open(id: string, ttlMs = 2_000): void {
    expect(this.apply({ type: "open-session", id, ttlMs, secretHash: `hash-${id}` })).toMatchObject({ type: "session", id });
  }

  acquire(session: string, lock: string, options: { mode?: "exclusive" | "shared"; wait?: boolean; limit?: number; lockDelayMs?: number } = {}): LockResult {
    return this.apply({ type: "acquire", session, lock, mode: options.mode ?? "exclusive", wait: options.wait ?? true, ...(options.limit === undefined ? {} : { limit: options.limit }), ...(options.lockDelayMs === undefined ? {} : { lockDelayMs: options.lockDelayMs }) });
  }

  holders(lock: string): string[] {
    const info = this.machine.query({ type: "lock", lock }) as Extract<LockQueryResult, { type: "lock" }>;
    return info.holders.map((holder) => holder.session);
  }

  events(type?: LockEvent["type"]): LockEvent[] {
    const all = this.machine.eventsSince(1, 100_000);
    return type === undefined ? all : all.filter((event) => event.type === type);
  }
}

describe("sessions", () => {
  it("refuses a TTL below the minimum, saying what the minimum is and why", () => {
    const log = new Log();
    const result = log.apply({ type: "open-session", id: "s", ttlMs: 1_000, secretHash: "" });
    expect(result).toMatchObject({ type: "error", error: { code: "TTL_TOO_SHORT", ttlMs: 1_000, minimumMs: 1_500 } });
    expect((result as { error: { message: string } }).error.message).toContain("1.5× the election timeout");
  });

  it("expires a session at the first command at or past its deadline, and a renewal moves the deadline", () => {
    const log = new Log();
    log.open("s", 2_000);
    log.time += 1_500;
    expect(log.apply({ type: "renew-sessions", ids: ["s", "unknown"] })).toEqual({ type: "renewed", renewed: 1, deadline: log.time + 2_000 });
    log.time += 1_999;
    log.apply({ type: "tick" });
    expect(log.machine.session("s")).toBeDefined();
    log.time += 1;
    log.apply({ type: "tick" });
    expect(log.machine.session("s")).toBeUndefined();
    expect(log.events("session-ended")).toMatchObject([{ session: "s", reason: "expired" }]);
  });

  it("a renewal never moves a deadline back", () => {
    const log = new Log();
    log.open("long", 10_000);
    const before = log.machine.session("long")?.deadline;
    log.apply({ type: "renew-sessions", ids: ["long"] });
    expect(log.machine.session("long")?.deadline).toBe(before);
  });
});

describe("exclusive locks", () => {
  it("grants at once with a token from the slot, refuses a try while held, queues a waiter and hands over in the releasing entry", () => {
    const log = new Log();
    log.open("a");
    log.open("b");
    const first = log.acquire("a", "L");
    expect(first).toEqual({ type: "granted", lock: "L", token: log.slot * GRANTS_PER_SLOT });
    expect(log.acquire("b", "L", { wait: false })).toMatchObject({ type: "busy", holders: [{ session: "a" }] });
    expect(log.acquire("b", "L")).toEqual({ type: "queued", lock: "L", position: 1 });
    expect(log.apply({ type: "release", session: "a", lock: "L" })).toEqual({ type: "released", lock: "L", held: true });
    const handover = log.events("acquired").at(-1);
    expect(handover).toMatchObject({ session: "b", token: log.slot * GRANTS_PER_SLOT });
    expect((handover as { token: number }).token).toBeGreaterThan((first as { token: number }).token);
    expect(log.holders("L")).toEqual(["b"]);
    expect(log.apply({ type: "release", session: "a", lock: "L" })).toEqual({ type: "released", lock: "L", held: false });
  });

  it("serves 50 waiters in FIFO order, one grant per release", () => {
    const log = new Log();
    const ids = Array.from({ length: 51 }, (_, index) => `s${String(index).padStart(2, "0")}`);
    for (const id of ids) log.open(id, 60_000);
    for (const id of ids) log.acquire(id, "L");
    const order: string[] = [];
    for (let index = 0; index < ids.length; index += 1) {
      const holders = log.holders("L");
      expect(holders).toHaveLength(1);
      order.push(holders[0] as string);
      const grantsBefore = log.events("acquired").length;
      log.apply({ type: "release", session: holders[0] as string, lock: "L" });
      expect(log.events("acquired").length - grantsBefore).toBe(index < ids.length - 1 ? 1 : 0);
    }
    expect(order).toEqual(ids);
  });

  it("gives two grants in one slot distinct, rising tokens", () => {
    const log = new Log();
    log.open("a");
    log.open("b");
    log.apply({ type: "tick" });
    const one = log.applyInSlot({ type: "acquire", session: "a", lock: "L1", mode: "exclusive", wait: false });
    const two = log.applyInSlot({ type: "acquire", session: "b", lock: "L2", mode: "exclusive", wait: false });
    expect([one, two]).toEqual([
      { type: "granted", lock: "L1", token: log.slot * GRANTS_PER_SLOT },
      { type: "granted", lock: "L2", token: log.slot * GRANTS_PER_SLOT + 1 },
    ]);
  });

  it("refuses a request in a session's name with the wrong secret", () => {
    const log = new Log();
    log.open("a");
    log.open("b");
    log.acquire("a", "L");
    for (const op of [
      { type: "release", session: "a", lock: "L", secretHash: "hash-b" },
      { type: "acquire", session: "a", lock: "M", mode: "exclusive", wait: false, secretHash: "guess" },
      { type: "close-session", id: "a", secretHash: "" },
    ] as TestOp[]) {
      expect(log.apply(op)).toMatchObject({ type: "error", error: { code: "SESSION_AUTH_FAILED", session: "a" } });
    }
    expect(log.holders("L")).toEqual(["a"]);
    expect(log.machine.session("a")).toBeDefined();
  });

  it("refuses a second acquire by the holder or a waiter, and a mismatched kind", () => {
    const log = new Log();
    log.open("a");
    log.open("b");
    log.acquire("a", "L");
    log.acquire("b", "L");
    expect(log.acquire("a", "L")).toMatchObject({ error: { code: "ALREADY_HOLDING" } });
    expect(log.acquire("b", "L")).toMatchObject({ error: { code: "ALREADY_WAITING" } });
    expect(log.acquire("b", "L", { limit: 3 })).toMatchObject({ error: { code: "LOCK_KIND_MISMATCH" } });
    expect(log.acquire("ghost", "L")).toMatchObject({ error: { code: "SESSION_NOT_FOUND" } });
  });
});

describe("shared locks and semaphores", () => {
  it("does not starve a writer: readers arriving after it queue behind it", () => {
    const log = new Log();
    for (const id of ["r1", "w", "r2", "r3"]) log.open(id, 60_000);
    expect(log.acquire("r1", "L", { mode: "shared" })).toMatchObject({ type: "granted" });
    expect(log.acquire("w", "L")).toMatchObject({ type: "queued", position: 1 });
    expect(log.acquire("r2", "L", { mode: "shared" })).toMatchObject({ type: "queued", position: 2 });
    expect(log.acquire("r3", "L", { mode: "shared", wait: false })).toMatchObject({ type: "busy" });
    log.apply({ type: "release", session: "r1", lock: "L" });
    expect(log.holders("L")).toEqual(["w"]);
    log.apply({ type: "release", session: "w", lock: "L" });
    expect(log.holders("L")).toEqual(["r2"]);
  });

  it("grants every compatible reader at the head together", () => {
    const log = new Log();
    for (const id of ["w", "r1", "r2", "w2"]) log.open(id, 60_000);
    log.acquire("w", "L");
    log.acquire("r1", "L", { mode: "shared" });
    log.acquire("r2", "L", { mode: "shared" });
    log.acquire("w2", "L");
    log.apply({ type: "release", session: "w", lock: "L" });
    expect(log.holders("L")).toEqual(["r1", "r2"]);
  });

  it("a 3-permit semaphore never has a 4th holder among 100 contenders", () => {
    const log = new Log();
    const random = new SeededRandom(42);
    const ids = Array.from({ length: 100 }, (_, index) => `c${index}`);
    for (const id of ids) log.open(id, 600_000);
    for (const id of ids) expect(log.acquire(id, "S", { limit: 3 })).toMatchObject({ type: expect.stringMatching(/granted|queued/) });
    let granted = 3;
    for (let round = 0; round < 97; round += 1) {
      const holders = log.holders("S");
      expect(holders.length).toBe(3);
      log.apply({ type: "release", session: holders[random.integer(holders.length)] as string, lock: "S" });
      granted += 1;
    }
    expect(log.events("acquired")).toHaveLength(granted);
    expect(log.holders("S").length).toBe(3);
  });
});

describe("expiry, cancellation, lock-delay and force-release", () => {
  it("a holder's expiry grants the next live waiter in the same entry; a waiter whose session expired is skipped and told", () => {
    const log = new Log();
    log.open("holder", 2_000);
    log.open("doomed", 1_500);
    log.open("next", 60_000);
    log.acquire("holder", "L");
    log.acquire("doomed", "L");
    log.acquire("next", "L");
    log.time += 2_000;
    log.apply({ type: "tick" });
    expect(log.holders("L")).toEqual(["next"]);
    expect(log.events().slice(-5).map((event) => `${event.type}:${"session" in event ? event.session : ""}`)).toEqual([
      "dequeued:doomed",
      "session-ended:doomed",
      "released:holder",
      "session-ended:holder",
      "acquired:next",
    ]);
    expect(log.events("acquired").map((event) => (event as { session: string }).session)).toEqual(["holder", "next"]);
    expect(log.events("dequeued")).toMatchObject([{ session: "doomed", reason: "session-expired" }]);
  });

  it("a cancelled waiter is skipped; cancelling the head lets the compatible waiters behind it in", () => {
    const log = new Log();
    for (const id of ["r", "w", "r2"]) log.open(id, 60_000);
    log.acquire("r", "L", { mode: "shared" });
    log.acquire("w", "L");
    log.acquire("r2", "L", { mode: "shared" });
    expect(log.apply({ type: "cancel", session: "w", lock: "L" })).toEqual({ type: "cancelled", lock: "L", waiting: true });
    expect(log.holders("L")).toEqual(["r", "r2"]);
    expect(log.apply({ type: "cancel", session: "w", lock: "L" })).toEqual({ type: "cancelled", lock: "L", waiting: false });
  });

  it("an involuntary release waits out the lock-delay; a voluntary one hands over at once", () => {
    const log = new Log();
    log.open("a", 2_000);
    log.open("b", 60_000);
    log.open("c", 60_000);
    log.acquire("b", "L", { lockDelayMs: 5_000 });
    log.acquire("c", "L");
    log.apply({ type: "release", session: "b", lock: "L" });
    expect(log.holders("L")).toEqual(["c"]);
    log.apply({ type: "release", session: "c", lock: "L" });
    log.acquire("a", "L", { lockDelayMs: 5_000 });
    log.acquire("c", "L");
    log.time += 2_000; // a's session expires: involuntary
    log.apply({ type: "tick" });
    expect(log.holders("L")).toEqual([]);
    const expiredAt = log.time;
    log.time = expiredAt + 4_999;
    log.apply({ type: "tick" });
    expect(log.holders("L")).toEqual([]);
    expect(log.machine.nextDelayEnd).toBe(expiredAt + 5_000);
    log.time = expiredAt + 5_000;
    log.apply({ type: "tick" });
    expect(log.holders("L")).toEqual(["c"]);
  });

  it("caps the lock-delay", () => {
    const log = new Log();
    log.open("a");
    expect(log.acquire("a", "L", { lockDelayMs: 3_600_000 })).toMatchObject({ type: "error", error: { code: "INVALID_REQUEST" } });
  });

  it("force-release ends the holds, records why, and their tokens are never issued again", () => {
    const log = new Log();
    log.open("a", 60_000);
    log.open("b", 60_000);
    const granted = log.acquire("a", "L") as { token: number };
    log.acquire("b", "L");
    expect(log.apply({ type: "force-release", lock: "L", reason: "operator: stuck job 4411" })).toEqual({ type: "forced", lock: "L", tokens: [granted.token] });
    expect(log.events("released").at(-1)).toMatchObject({ session: "a", reason: "forced", note: "operator: stuck job 4411" });
    const next = log.events("acquired").at(-1) as { session: string; token: number };
    expect(next.session).toBe("b");
    expect(next.token).toBeGreaterThan(granted.token);
  });

  it("closing a session releases its locks voluntarily and withdraws its waits", () => {
    const log = new Log();
    log.open("a", 60_000);
    log.open("b", 60_000);
    log.acquire("a", "L", { lockDelayMs: 10_000 });
    log.acquire("b", "L");
    log.acquire("a", "M");
    log.apply({ type: "close-session", id: "a" });
    expect(log.holders("L")).toEqual(["b"]);
    expect(log.machine.session("a")).toBeUndefined();
  });
});

describe("fencing tokens", () => {
  it("check-token: the current grant is valid, an older one is stale", () => {
    const log = new Log();
    log.open("a", 60_000);
    log.open("b", 60_000);
    const first = (log.acquire("a", "L") as { token: number }).token;
    log.apply({ type: "release", session: "a", lock: "L" });
    const second = (log.acquire("b", "L") as { token: number }).token;
    expect(log.machine.query({ type: "check-token", lock: "L", token: second })).toMatchObject({ valid: true, highestToken: second });
    const stale = log.machine.query({ type: "check-token", lock: "L", token: first });
    expect(stale).toMatchObject({ valid: false, highestToken: second });
    expect((stale as { reason: string }).reason).toContain("stale");
  });
});

describe("snapshots and bad input", () => {
  it("a restored machine has the same digest and answers the next commands the same", () => {
    const log = new Log();
    for (const id of ["a", "b", "c"]) log.open(id, 5_000);
    log.acquire("a", "L", { lockDelayMs: 1_000 });
    log.acquire("b", "L");
    log.acquire("c", "S", { limit: 2, mode: "shared" });
    const copy = new LockMachine({ minSessionTtlMs: 1_500 });
    copy.restore(log.machine.snapshot()());
    copy.checkInvariants();
    expect(copy.digest()).toBe(log.machine.digest());
    log.time += 5_000;
    const context = { slot: log.slot + 1, time: log.time, session: "x", seq: 1 };
    const op: LockOp = { type: "acquire", session: "c", secretHash: "hash-c", lock: "L", mode: "exclusive", wait: true };
    expect(copy.apply(op, context)).toEqual(log.machine.apply(op, context));
    expect(copy.digest()).toBe(log.machine.digest());
  });

  it("rejects a damaged snapshot and keeps its state", () => {
    const log = new Log();
    log.open("a");
    const before = log.machine.digest();
    expect(() => log.machine.restore(new TextEncoder().encode('{"format":"synod-lock/1"}'))).toThrow(/invalid lock snapshot/);
    expect(log.machine.digest()).toBe(before);
  });

  it("answers malformed operations and queries with INVALID_REQUEST, never a throw", () => {
    const log = new Log();
    for (const bad of [null, 7, { type: "acquire" }, { type: "acquire", session: "a", lock: "", mode: "exclusive", wait: true }, { type: "nope" }]) {
      expect(log.apply(bad as never)).toMatchObject({ type: "error", error: { code: "INVALID_REQUEST" } });
    }
    expect(log.machine.query({ type: "lock" } as never)).toMatchObject({ type: "error", error: { code: "INVALID_REQUEST" } });
  });
});

describe("randomized histories", () => {
  const seeds = Number(process.env.SYNOD_LOCK_SEEDS ?? 40);
  it(`keeps every invariant, rising tokens and FIFO grants over ${seeds} seeded histories`, () => {
    for (let seed = 1; seed <= seeds; seed += 1) {
      const log = new Log();
      const random = new SeededRandom(seed);
      const sessions = ["a", "b", "c", "d", "e", "f"];
      const locks = ["L1", "L2", "S"];
      try {
        for (let step = 0; step < 400; step += 1) {
          const session = sessions[random.integer(sessions.length)] as string;
          const lock = locks[random.integer(locks.length)] as string;
          const roll = random.float();
          if (roll < 0.1) log.apply({ type: "open-session", id: session, ttlMs: 1_500 + random.integer(3_000), secretHash: "" });
          else if (roll < 0.45) log.apply({ type: "acquire", session, lock, mode: random.float() < 0.5 ? "shared" : "exclusive", wait: random.float() < 0.7, ...(lock === "S" ? { limit: 2 } : {}), ...(random.float() < 0.2 ? { lockDelayMs: random.integer(2_000) } : {}) });
          else if (roll < 0.7) log.apply({ type: "release", session, lock });
          else if (roll < 0.78) log.apply({ type: "cancel", session, lock });
          else if (roll < 0.85) log.apply({ type: "renew-sessions", ids: [session] });
          else if (roll < 0.88) log.apply({ type: "force-release", lock, reason: "test" });
          else if (roll < 0.9) log.apply({ type: "close-session", id: session });
          else {
            log.time += random.integer(1_500);
            log.apply({ type: "tick" });
          }
        }
        const grants = log.events("acquired") as Extract<LockEvent, { type: "acquired" }>[];
        for (let index = 1; index < grants.length; index += 1) expect((grants[index] as { token: number }).token).toBeGreaterThan((grants[index - 1] as { token: number }).token);
        // FIFO: replaying the events, a grant to a queued session always goes to the head of that lock's queue.
        const queues = new Map<string, string[]>();
        for (const event of log.events()) {
          if (!("lock" in event)) continue;
          const queue = queues.get(event.lock) ?? [];
          queues.set(event.lock, queue);
          if (event.type === "queued") queue.push(event.session);
          else if (event.type === "dequeued") queue.splice(queue.indexOf(event.session), 1);
          else if (event.type === "acquired" && queue.includes(event.session)) {
            expect(queue[0], `seed ${seed}: ${event.lock} granted to ${event.session} ahead of ${queue.join(",")}`).toBe(event.session);
            queue.shift();
          }
        }
      } catch (error) {
        throw new Error(`randomized lock history failed at seed ${seed} (replay: SYNOD_LOCK_SEEDS=${seed}): ${(error as Error).message}`);
      }
    }
  });
});
