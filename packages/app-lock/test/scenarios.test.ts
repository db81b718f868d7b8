/**
 * Scenarios against real 3-replica clusters (`synod-lock serve` processes on
 * loopback with a 20 ms tick: elections in 200–400 ms, a minimum session TTL
 * of 600 ms; see `cluster.ts`): what a user of the lock service relies on,
 * checked through the client, separate holder processes and the CLI while
 * holders and leaders crash or stall.
 *
 * One cluster per `describe`; every lock name is the test's own, so the
 * tests of a block do not see each other's locks. Every wait is bounded and
 * says what it waited for.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { type HeldLock, type LockClient, LockOperationError, type LockSession, LockWaitError, type SessionState } from "../src/index.js";
import { LockCluster, Relay, killFixtures, runCli, sleep, spawnFixture, until, within } from "./cluster.js";
import { describeEvents, lockEvents, parseHeld, waitUntilQueued } from "./partition-helpers.js";

/** The TTL of holder processes: well above the 600 ms minimum, short enough to wait out. */
const HOLDER_TTL_MS = 1_000;
/** Slack for a dead holder's expiry to be noticed: the last renewal batch, the keeper's tick, the waiter's wake-up. */
const EXPIRY_GRACE_MS = 1_000;



/** Polls the lock's holders until stopped: every session seen holding it, and the most holders seen at once. */
function watchHolders(client: LockClient, lock: string): { stop(): Promise<{ sessions: Set<string>; most: number; polls: number }> } {
  const sessions = new Set<string>();
  let most = 0;
  let polls = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const info = await client.lock(lock);
        polls += 1;
        for (const holder of info.holders) sessions.add(holder.session);
        most = Math.max(most, info.holders.length);
      } catch {
        // a read lost to a leader change: the next poll goes on
      }
      await sleep(5);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return { sessions, most, polls };
    },
  };
}



describe("when a holder's process fails", () => {
  let cluster: LockCluster;
  let client: LockClient;
  beforeAll(async () => {
    cluster = await LockCluster.start();
    client = cluster.client();
  }, 30_000);
  afterEach(killFixtures);
  afterAll(async () => {
    await cluster?.close();
  });

  test("a SIGKILLed holder's lock goes to the next waiter within TTL + grace, with a larger token, to nobody in between", { timeout: 20_000 }, async () => {
    const lock = "crash/kill";
    const holder = await spawnFixture("holder", [cluster.urls.join(","), lock, String(HOLDER_TTL_MS)]);
    const old = parseHeld(await holder.line("held ", 10_000));
    const waiter = await client.session({ ttlMs: 2_000 });
    const acquiring = waiter.acquire(lock, { timeoutMs: 10_000 });
    await waitUntilQueued(client, lock, [waiter.id]);

    const holders = watchHolders(client, lock);
    const killedAt = performance.now();
    await holder.kill();
    const held = await acquiring;
    const handoverMs = performance.now() - killedAt;
    const seen = await holders.stop();

    expect(handoverMs).toBeLessThan(HOLDER_TTL_MS + EXPIRY_GRACE_MS + 500);
    expect(held.token).toBeGreaterThan(old.token);
    // Polled throughout: only the two ever held it, never both at once.
    expect([...seen.sessions].filter((session) => session !== old.session && session !== waiter.id)).toEqual([]);
    expect(seen.sessions.has(old.session)).toBe(true);
    expect(seen.most).toBe(1);
    const names = new Map([
      [old.session, "holder"],
      [waiter.id, "waiter"],
    ]);
    expect(describeEvents(await lockEvents(client, lock), names)).toEqual(["acquired holder", "queued waiter", "released holder session-expired", "acquired waiter"]);
    expect(await client.checkToken(lock, held.token)).toMatchObject({ valid: true, highestToken: held.token });
    await held.release();
    await waiter.close();
  });

  test("a holder stopped for 3 × TTL loses the lock to another, and its signal has aborted before it can act again", { timeout: 20_000 }, async () => {
    const lock = "crash/stop";
    const holder = await spawnFixture("holder", [cluster.urls.join(","), lock, String(HOLDER_TTL_MS)]);
    const old = parseHeld(await holder.line("held ", 10_000));
    const other = await client.session({ ttlMs: 2_000 });
    const acquiring = other.acquire(lock, { timeoutMs: 10_000 });
    await waitUntilQueued(client, lock, [other.id]);

    holder.signal("SIGSTOP");
    const stoppedAt = performance.now();
    const held = await acquiring;
    expect(performance.now() - stoppedAt).toBeLessThan(HOLDER_TTL_MS + EXPIRY_GRACE_MS + 500);
    expect(held.token).toBeGreaterThan(old.token);
    await sleep(Math.max(0, stoppedAt + 3 * HOLDER_TTL_MS - performance.now()));
    holder.signal("SIGCONT");

    // The first moment the old holder runs again, from a signal handler and from a timer: its lock must already read as lost.
    const fromSignal = await holder.line("resumed sigcont ", 5_000);
    const fromLoop = await holder.line("resumed work-loop ", 5_000);
    expect(fromSignal, `the SIGCONT handler saw the lock as still held:\n${holder.output()}`).toContain("aborted=true");
    expect(fromLoop, `a timer that ran first after the pause saw the lock as still held:\n${holder.output()}`).toContain("aborted=true");
    await holder.line("state expired", 5_000);

    const check = await client.checkToken(lock, old.token);
    expect(check.valid).toBe(false);
    expect(check.highestToken).toBe(held.token);
    expect(check.reason).toMatch(/stale/);
    expect(await client.checkToken(lock, held.token)).toMatchObject({ valid: true });
    await held.release();
    await other.close();
  });

  test("a voluntary release hands over at once despite a lock-delay; an expiry waits the lock-delay out", { timeout: 20_000 }, async () => {
    // Voluntary: a 3 s lock-delay does not apply.
    const voluntary = "delay/voluntary";
    const first = await client.session({ ttlMs: 2_000 });
    const second = await client.session({ ttlMs: 2_000 });
    const firstHeld = await first.acquire(voluntary, { lockDelayMs: 3_000 });
    const acquiring = second.acquire(voluntary, { timeoutMs: 10_000 });
    await waitUntilQueued(client, voluntary, [second.id]);
    const releasedAt = performance.now();
    await firstHeld.release();
    const secondHeld = await acquiring;
    expect(performance.now() - releasedAt).toBeLessThan(500);
    expect(secondHeld.token).toBeGreaterThan(firstHeld.token);
    await secondHeld.release();

    // Involuntary: the holder's process dies; nobody gets the lock until its expiry plus the lock-delay.
    const lockDelayMs = 1_000;
    const involuntary = "delay/involuntary";
    const holder = await spawnFixture("holder", [cluster.urls.join(","), involuntary, String(HOLDER_TTL_MS), String(lockDelayMs)]);
    const old = parseHeld(await holder.line("held ", 10_000));
    const waiting = second.acquire(involuntary, { timeoutMs: 10_000 });
    await waitUntilQueued(client, involuntary, [second.id]);
    const killedAt = performance.now();
    await holder.kill();
    let expiredAt = Number.NaN;
    await until(
      async () => {
        const info = await client.lock(involuntary);
        if (info.holders.length > 0) return false;
        expiredAt = performance.now();
        return true;
      },
      HOLDER_TTL_MS + EXPIRY_GRACE_MS + 500,
      "the dead holder's session to expire",
      10,
    );
    const held = await waiting;
    const grantedAt = performance.now();
    // Seen from here: the grant comes a lock-delay after the expiry (less the polling's slack), and in all no sooner than the lock-delay after the kill.
    expect(grantedAt - expiredAt).toBeGreaterThanOrEqual(lockDelayMs - 100);
    expect(grantedAt - killedAt).toBeLessThan(HOLDER_TTL_MS + lockDelayMs + EXPIRY_GRACE_MS + 500);
    // In log time, exactly: no grant before the expiry's time + the lock-delay.
    const events = await lockEvents(client, involuntary);
    const expiry = events.find((event) => event.type === "released" && event.session === old.session);
    const grant = events.find((event) => event.type === "acquired" && event.session === second.id);
    expect(expiry).toMatchObject({ reason: "session-expired" });
    expect((grant?.time ?? 0) - (expiry?.time ?? 0)).toBeGreaterThanOrEqual(lockDelayMs);
    expect(held.token).toBeGreaterThan(old.token);
    await held.release();
    await first.close();
    await second.close();
  });
});

describe("on a healthy cluster", () => {
  let cluster: LockCluster;
  beforeAll(async () => {
    cluster = await LockCluster.start();
  }, 30_000);
  afterAll(async () => {
    await cluster?.close();
  });

  test("50 queued sessions are granted in FIFO order, one wake-up per release", { timeout: 30_000 }, async () => {
    const lock = "queue/fifo";
    // Long request timeouts: a waiter's long poll then ends only when its state changes.
    const client = cluster.client({ requestTimeoutMs: 15_000, maxSessions: 16 });
    const wakeUps = new Map<string, string[]>();
    const awaitGrant = client.awaitGrant.bind(client);
    client.awaitGrant = async (...args: Parameters<LockClient["awaitGrant"]>) => {
      const answer = await awaitGrant(...args);
      wakeUps.set(args[0], [...(wakeUps.get(args[0]) ?? []), answer.type]);
      return answer;
    };
    const head = await client.session({ ttlMs: 2_000 });
    const headHeld = await head.acquire(lock);
    const sessions = await Promise.all(Array.from({ length: 50 }, () => client.session({ ttlMs: 2_000 })));
    const granted: string[] = [];
    const done = sessions.map((session) =>
      session.acquire(lock, { timeoutMs: 20_000 }).then(async (held) => {
        granted.push(session.id);
        await held.release();
      }),
    );
    await waitUntilQueued(client, lock, sessions.map((session) => session.id), 10_000);
    const queue = (await client.lock(lock)).waiters.map((waiter) => waiter.session);
    expect(queue).toHaveLength(50);

    await headHeld.release();
    await within(Promise.all(done), 20_000, "all 50 grants");
    expect(granted).toEqual(queue);
    // Each waiter's long poll answered once, with its grant: a release wakes one waiter, not the herd.
    expect(sessions.filter((session) => wakeUps.get(session.id)?.join(",") !== "granted").map((session) => wakeUps.get(session.id))).toEqual([]);
    // The log agrees: after the head, each release is followed by exactly one grant, to the next in line, with a larger token.
    const events = (await lockEvents(client, lock)).filter((event) => event.type === "acquired" || event.type === "released");
    const expected = [head.id, ...queue].flatMap((session) => [`acquired ${session}`, `released ${session}`]);
    expect(events.map((event) => `${event.type} ${event.session}`)).toEqual(expected);
    const tokens = events.filter((event) => event.type === "acquired").map((event) => event.token);
    expect(tokens).toEqual([...tokens].sort((a, b) => a - b));
    expect(new Set(tokens).size).toBe(tokens.length);
    await Promise.all([head, ...sessions].map((session) => session.close()));
  });

  test("readers streaming in do not starve a writer", { timeout: 20_000 }, async () => {
    const lock = "queue/rw";
    const client = cluster.client();
    const readers = await Promise.all(Array.from({ length: 6 }, () => client.session({ ttlMs: 2_000 })));
    const writer = await client.session({ ttlMs: 2_000 });
    let stopped = false;
    const readerCycles = readers.map(async (reader, index) => {
      let cycles = 0;
      await sleep(index * 10);
      while (!stopped) {
        const held = await reader.acquire(lock, { mode: "shared", timeoutMs: 10_000 });
        await sleep(60);
        await held.release();
        cycles += 1;
      }
      return cycles;
    });
    // The readers overlap: the lock is never free of them unless a writer gets in.
    await until(async () => (await client.lock(lock)).holders.length >= 3, 5_000, "readers to overlap");
    const askedAt = performance.now();
    const held = await writer.acquire(lock, { timeoutMs: 5_000 });
    const waitedMs = performance.now() - askedAt;
    const whileHeld = await client.lock(lock);
    await sleep(100);
    const stillHeld = await client.lock(lock);
    await held.release();
    stopped = true;
    const cycles = await within(Promise.all(readerCycles), 10_000, "the readers to stop");

    expect(waitedMs).toBeLessThan(2_000);
    expect(whileHeld.holders.map((holder) => holder.session)).toEqual([writer.id]);
    expect(stillHeld.holders.map((holder) => holder.session)).toEqual([writer.id]);
    expect(cycles.every((count) => count > 0)).toBe(true);
    // Nobody overtook the writer: between its queueing and its grant, no grant at all (readers queued behind it).
    const events = await lockEvents(client, lock);
    const queuedAt = events.findIndex((event) => event.type === "queued" && event.session === writer.id);
    const grantedAt = events.findIndex((event) => event.type === "acquired" && event.session === writer.id);
    expect(queuedAt).toBeGreaterThanOrEqual(0);
    const meanwhile = events.slice(queuedAt + 1, grantedAt);
    expect(meanwhile.filter((event) => event.type === "acquired")).toEqual([]);
    // And readers did come while it waited: they queued behind it.
    expect(meanwhile.filter((event) => event.type === "queued").length).toBeGreaterThan(0);
    await Promise.all([...readers, writer].map((session) => session.close()));
  });

  test("a 3-permit semaphore never has a 4th holder under 100 contenders", { timeout: 30_000 }, async () => {
    const lock = "queue/semaphore";
    const clients = Array.from({ length: 4 }, () => cluster.client({ requestTimeoutMs: 15_000, maxSessions: 16 }));
    const observer = cluster.client();
    const sessions = await Promise.all(Array.from({ length: 100 }, (_, index) => (clients[index % clients.length] as LockClient).session({ ttlMs: 2_000 })));
    const holders = watchHolders(observer, lock);
    let inside = 0;
    let mostInside = 0;
    await within(
      Promise.all(
        sessions.map(async (session) => {
          const held = await session.acquire(lock, { limit: 3, timeoutMs: 20_000 });
          inside += 1;
          mostInside = Math.max(mostInside, inside);
          await sleep(10);
          inside -= 1;
          await held.release();
        }),
      ),
      25_000,
      "100 contenders to get and give back a permit",
    );
    const seen = await holders.stop();
    expect(seen.polls).toBeGreaterThan(10);
    expect(seen.most).toBeLessThanOrEqual(3);
    expect(mostInside).toBeLessThanOrEqual(3);
    // Replayed from the log: never more than 3 at once, and the permits were used.
    const current = new Set<string>();
    let most = 0;
    for (const event of await lockEvents(observer, lock)) {
      if (event.type === "acquired") current.add(event.session);
      if (event.type === "released") current.delete(event.session);
      most = Math.max(most, current.size);
    }
    expect(most).toBe(3);
    await Promise.all(sessions.map((session) => session.close()));
  });

  test("a waiter whose session expires is never granted and is told within TTL + 1 s", { timeout: 20_000 }, async () => {
    const lock = "queue/expired-waiter";
    const client = cluster.client();
    const holder = await client.session({ ttlMs: 2_000 });
    const held = await holder.acquire(lock);
    const waiter = await client.session({ ttlMs: 1_000 });
    const states: SessionState[] = [];
    waiter.on((state) => states.push(state));
    const outcome = waiter.acquire(lock, { timeoutMs: 10_000 }).then(
      (granted) => ({ granted }),
      (error: unknown) => ({ error }),
    );
    await waitUntilQueued(client, lock, [waiter.id]);
    // The waiter's process hangs: no more keepalives, but its wait goes on.
    waiter.stop();
    const stoppedAt = performance.now();
    const result = await within(outcome, 5_000, "the expired waiter's acquire to settle");
    expect(performance.now() - stoppedAt).toBeLessThan(1_000 + 1_000);
    expect(result).toMatchObject({ error: expect.any(LockOperationError) });
    expect((result as { error: LockOperationError }).error.code).toBe("SESSION_NOT_FOUND");
    expect(waiter.status).toBe("expired");
    expect(states).toContain("expired");

    await held.release();
    const events = await lockEvents(client, lock);
    expect(events.filter((event) => event.session === waiter.id).map((event) => `${event.type}${"reason" in event ? ` ${event.reason}` : ""}`)).toEqual(["queued", "dequeued session-expired"]);
    expect((await client.lock(lock)).holders).toEqual([]);
    await holder.close();
  });

  test("a waiter cancelled by its signal or its timeout is skipped", { timeout: 20_000 }, async () => {
    const lock = "queue/cancelled";
    const client = cluster.client();
    const [holder, aborted, timedOut, patient] = (await Promise.all(Array.from({ length: 4 }, () => client.session({ ttlMs: 2_000 })))) as [LockSession, LockSession, LockSession, LockSession];
    const held = await holder.acquire(lock);
    const controller = new AbortController();
    const abortedOutcome = aborted.acquire(lock, { signal: controller.signal }).then(
      () => "granted",
      (error: unknown) => error,
    );
    await waitUntilQueued(client, lock, [aborted.id]);
    const timedOutOutcome = timedOut.acquire(lock, { timeoutMs: 500 }).then(
      () => "granted",
      (error: unknown) => error,
    );
    await waitUntilQueued(client, lock, [timedOut.id]);
    const patientHeld = patient.acquire(lock, { timeoutMs: 10_000 });
    await waitUntilQueued(client, lock, [patient.id]);

    controller.abort(new Error("no longer needed"));
    expect(await within(abortedOutcome, 5_000, "the aborted acquire to settle")).toMatchObject({ message: "no longer needed" });
    const timeout = await within(timedOutOutcome, 5_000, "the timed-out acquire to settle");
    expect(timeout).toBeInstanceOf(LockWaitError);
    expect(timeout).toMatchObject({ code: "LOCK_TIMEOUT" });
    expect((await client.lock(lock)).waiters.map((waiter) => waiter.session)).toEqual([patient.id]);

    await held.release();
    const granted = await patientHeld;
    const names = new Map([
      [holder.id, "holder"],
      [aborted.id, "aborted"],
      [timedOut.id, "timed-out"],
      [patient.id, "patient"],
    ]);
    expect(describeEvents(await lockEvents(client, lock), names)).toEqual([
      "acquired holder",
      "queued aborted",
      "queued timed-out",
      "queued patient",
      "dequeued aborted cancelled",
      "dequeued timed-out cancelled",
      "released holder released",
      "acquired patient",
    ]);
    await granted.release();
    await Promise.all([holder, aborted, timedOut, patient].map((session) => session.close()));
  });

  test("a wait longer than the client's request and operation timeouts still ends in the grant", { timeout: 20_000 }, async () => {
    const lock = "queue/long-wait";
    const holderClient = cluster.client();
    const holder = await holderClient.session({ ttlMs: 2_000 });
    const held = await holder.acquire(lock);
    // The waiter's client gives one request 300 ms and one operation 1.5 s; the holder keeps the lock for 2.5 s.
    const waiterClient = cluster.client({ requestTimeoutMs: 300, operationTimeoutMs: 1_500 });
    const waiter = await waiterClient.session({ ttlMs: 2_000 });
    const outcome = waiter.acquire(lock, { timeoutMs: 10_000 }).then(
      (granted) => ({ granted }),
      (error: unknown) => ({ error }),
    );
    await waitUntilQueued(holderClient, lock, [waiter.id]);
    await sleep(2_500);
    await held.release();
    const result = await within(outcome, 5_000, "the long wait to settle");
    const info = await holderClient.lock(lock);
    expect(info.holders.map((entry) => entry.session)).toEqual([waiter.id]);
    // A rejected acquire whose session holds the lock anyway: the lock is leaked to a caller that believes it failed.
    expect("granted" in result ? "granted" : String((result as { error: unknown }).error), "the acquire failed, yet its session was granted the lock").toBe("granted");
    await Promise.all([holder, waiter].map((session) => session.close()));
  });

  test("the CLI runs two contending commands one after the other; --help exits 0; an unknown command exits 2", { timeout: 30_000 }, async () => {
    const directory = mkdtempSync(join(tmpdir(), "synod-lock-cli-"));
    try {
      const file = join(directory, "intervals");
      const script = `echo "start $(date +%s%N) $SYNOD_LOCK_TOKEN" >> ${file}; sleep 0.3; echo "end $(date +%s%N) $SYNOD_LOCK_TOKEN" >> ${file}`;
      const args = ["lock", "cli/job", "--endpoints", cluster.urls.join(","), "--ttl", "1500", "--", "sh", "-c", script];
      const runs = await Promise.all([runCli(args), runCli(args)]);
      expect(runs.map((run) => run.code)).toEqual([0, 0]);
      const lines = readFileSync(file, "utf8").trim().split("\n").map((line) => line.split(" "));
      expect(lines.map(([what]) => what)).toEqual(["start", "end", "start", "end"]);
      const [firstStart, firstEnd, secondStart, secondEnd] = lines.map(([, nanoseconds, token]) => ({ at: BigInt(nanoseconds as string), token: Number(token) })) as [
        { at: bigint; token: number },
        { at: bigint; token: number },
        { at: bigint; token: number },
        { at: bigint; token: number },
      ];
      expect(firstEnd.token).toBe(firstStart.token);
      expect(secondEnd.token).toBe(secondStart.token);
      expect(secondStart.token).toBeGreaterThan(firstStart.token);
      expect(firstStart.at < firstEnd.at && firstEnd.at < secondStart.at && secondStart.at < secondEnd.at).toBe(true);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }

    const help = await runCli(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("synod-lock lock NAME");
    const unknown = await runCli(["frobnicate", "--endpoints", cluster.urls.join(",")]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
  });

  test("synod-lock members lists the configuration with each member's role and lag, and refuses a change against a stale configuration", { timeout: 30_000 }, async () => {
    const listed = await runCli(["members", "list", "--endpoints", cluster.urls.join(",")]);
    expect(listed.code, listed.stderr).toBe(0);
    const view = JSON.parse(listed.stdout) as { config: { id: number; voters: string[]; learners: string[] }; members: { id: string; role: string; lagSlots?: number; leader: boolean }[] };
    expect([...view.config.voters].sort()).toEqual(["n1", "n2", "n3"]);
    expect(view.members.map((member) => member.role)).toEqual(["voter", "voter", "voter"]);
    expect(view.members.filter((member) => member.leader)).toHaveLength(1);
    expect(view.members.every((member) => typeof member.lagSlots === "number")).toBe(true);
    // A change that expects another configuration is refused (exit 1) and changes nothing.
    const stale = await runCli(["members", "remove", "n3", "--expected-config", String(view.config.id + 1), "--endpoints", cluster.urls.join(",")]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain("CONFIG_CHANGED");
    const again = JSON.parse((await runCli(["members", "list", "--endpoints", cluster.urls.join(",")])).stdout) as typeof view;
    expect(again.config).toEqual(view.config);
    // Bad usage exits 2.
    expect((await runCli(["members", "add", "n4", "--endpoints", cluster.urls.join(",")])).code).toBe(2);
  });
});

describe("when the leader fails", () => {
  let cluster: LockCluster;
  beforeAll(async () => {
    cluster = await LockCluster.start();
  }, 30_000);
  afterAll(async () => {
    await cluster?.close();
  });

  /** After a test killed the leader `killed`: waits for a new one and brings the old one back, for the next test. */
  async function failOver(killed: string): Promise<void> {
    await cluster.waitForLeader();
    await cluster.restart(killed);
    await cluster.waitForLeader();
  }

  test("a holder keeps its lock and token across a leader crash, seeing at most jeopardy then safe", { timeout: 20_000 }, async () => {
    const lock = "failover/held";
    const ttlMs = 2_000;
    const client = cluster.client({ requestTimeoutMs: 300 });
    const observer = cluster.client();
    const session = await client.session({ ttlMs });
    const states: SessionState[] = [];
    session.on((state) => states.push(state));
    const held = await session.acquire(lock);
    const { leader } = await cluster.roles();

    await cluster.kill(leader.id);
    const newLeader = await cluster.waitForLeader();
    expect(newLeader).not.toBe(leader.id);
    // Longer than the TTL under the new leader: a session kept alive there must not have expired.
    await sleep(ttlMs + 500);
    await until(() => session.status === "safe", 2_000, "the session to be safe again");

    expect(states.filter((state) => state !== "jeopardy" && state !== "safe")).toEqual([]);
    expect(states.join(",")).toMatch(/^(jeopardy,safe,?)*$/);
    expect(held.signal.aborted).toBe(false);
    expect(await observer.checkToken(lock, held.token)).toEqual({ valid: true, highestToken: held.token });
    expect((await observer.lock(lock)).holders).toEqual([expect.objectContaining({ session: session.id, token: held.token })]);
    await held.release();
    await session.close();
    await failOver(leader.id);
  });

  test("an acquire applied by a leader that crashes before answering returns, on retry, the token it was granted", { timeout: 30_000 }, async () => {
    const lock = "failover/retried";
    const { leader, followers } = await cluster.roles();
    const relay = await Relay.start(leader.url);
    try {
      // This client knows only the relay; the relay lets the acquire through and loses the leader's answer.
      const client = cluster.client({ urls: [relay.url], requestTimeoutMs: 1_000 });
      const observer = cluster.client();
      const session = await client.session({ ttlMs: 2_000 });
      relay.dropReplies = true;
      let answered = false;
      const acquiring = session.acquire(lock).finally(() => {
        answered = true;
      });
      await until(async () => (await observer.lock(lock)).holders.some((holder) => holder.session === session.id), 5_000, "the acquire to be applied");
      expect(answered).toBe(false);
      relay.retarget((followers[0] as { url: string }).url);
      relay.dropReplies = false;
      await cluster.kill(leader.id);
      const held = await within(acquiring, 15_000, "the retried acquire");

      const info = await observer.lock(lock);
      expect(info.holders).toEqual([expect.objectContaining({ session: session.id, token: held.token })]);
      const grants = (await lockEvents(observer, lock)).filter((event) => event.type === "acquired");
      expect(grants).toEqual([expect.objectContaining({ session: session.id, token: held.token })]);
      await held.release();
      await session.close();
    } finally {
      await relay.close();
    }
    await failOver(leader.id);
  });

  test("an acquire sent just before the leader is killed leaves one holder, with the token it returned", { timeout: 30_000 }, async () => {
    const lock = "failover/raced";
    const { leader } = await cluster.roles();
    const client = cluster.client({ requestTimeoutMs: 500 });
    const observer = cluster.client();
    const session = await client.session({ ttlMs: 2_000 });
    const acquiring = session.acquire(lock);
    // Let the request leave this process, then kill the leader: it may or may not have applied it.
    await new Promise((resolve) => setImmediate(resolve));
    await cluster.kill(leader.id);
    const held: HeldLock = await within(acquiring, 15_000, "the retried acquire");

    const info = await observer.lock(lock);
    expect(info.holders).toEqual([expect.objectContaining({ session: session.id, token: held.token })]);
    const grants = (await lockEvents(observer, lock)).filter((event) => event.type === "acquired");
    expect(grants).toEqual([expect.objectContaining({ session: session.id, token: held.token })]);
    await held.release();
    await session.close();
    await failOver(leader.id);
  });
});
