/**
 * The lock service end to end on three in-process replicas (real WebSocket
 * links and file storage on loopback): keepalives without log writes,
 * secrets, resuming a session from another client, try/timeout/abort waits.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePorts } from "@synod/testkit/processes";
import { silentLogger } from "@synod/transport-ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LockClient, LockOperationError, type LockSession, LockWaitError, type RunningLockServer, startLockServer } from "../src/index.js";

let servers: RunningLockServer[] = [];
let urls: string[] = [];
const directory = mkdtempSync(join(tmpdir(), "synod-lock-service-"));
const clients: LockClient[] = [];

function client(): LockClient {
  const made = new LockClient({ urls, requestTimeoutMs: 1_000, operationTimeoutMs: 10_000 });
  clients.push(made);
  return made;
}

beforeAll(async () => {
  const ports = await freePorts(3);
  const members = ports.map((port, index) => ({ id: `n${index + 1}`, url: `ws://127.0.0.1:${port}` }));
  urls = members.map((member) => member.url);
  servers = await Promise.all(members.map((member) => startLockServer({ id: member.id, members, dataDir: join(directory, member.id), tickMs: 20 }, { logger: silentLogger })));
  const deadline = Date.now() + 10_000;
  while (servers.filter((server) => server.node.status().role === "leader").length !== 1) {
    if (Date.now() > deadline) throw new Error("no leader within 10 s");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
});

afterAll(async () => {
  for (const made of clients) await made.close();
  await Promise.all(servers.map((server) => server.stop()));
  rmSync(directory, { recursive: true, force: true });
});

const leader = () => servers.find((server) => server.node.status().role === "leader") as RunningLockServer;

describe("sessions", () => {
  it("refuses a TTL below 1.5× the longest election timeout, naming the minimum", async () => {
    const minimum = servers[0]?.minSessionTtlMs as number;
    expect(minimum).toBe(600);
    const error = await client()
      .session({ ttlMs: minimum - 1 })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(LockOperationError);
    expect(error).toMatchObject({ code: "TTL_TOO_SHORT" });
    expect((error as Error).message).toContain(`${minimum} ms`);
  });

  it("keepalives do not write to the log: 20 live sessions cost a few renewal entries a second", async () => {
    const locks = client();
    const sessions: LockSession[] = [];
    for (let index = 0; index < 20; index += 1) sessions.push(await locks.session({ ttlMs: 900 }));
    const before = leader().node.status().lastSlot;
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const entries = leader().node.status().lastSlot - before;
    // 20 sessions keeping alive every 300 ms send about 100 keepalives here; renewals are batched.
    expect(entries).toBeLessThan(30);
    for (const session of sessions) {
      expect(session.status).toBe("safe");
      expect(servers[0]?.machine.session(session.id)).toBeDefined();
    }
    for (const session of sessions) await session.close();
  });

  it("a session resumes from another client with its id and secret, and refuses a wrong secret", async () => {
    const first = await client().session({ ttlMs: 2_000 });
    const held = await first.acquire("resume/L");
    first.stop();
    const resumed = await client().resume(first.id, first.secret);
    expect(resumed.ttlMs).toBe(2_000);
    const wrong = await client()
      .resume(first.id, "0".repeat(48))
      .catch((caught: unknown) => caught);
    expect(wrong).toMatchObject({ code: "SESSION_AUTH_FAILED" });
    // The resumed session keeps the lock alive past the TTL the first client stopped renewing.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const info = await clients[0]?.lock("resume/L");
    expect(info?.holders.map((holder) => holder.token)).toEqual([held.token]);
    await resumed.close();
  });
});

describe("acquiring", () => {
  it("a try on a taken lock fails at once with LOCK_BUSY", async () => {
    const locks = client();
    const a = await locks.session({ ttlMs: 2_000 });
    const b = await locks.session({ ttlMs: 2_000 });
    await a.acquire("try/L");
    await expect(b.acquire("try/L", { wait: false })).rejects.toMatchObject({ code: "LOCK_BUSY" });
    await a.close();
    await b.close();
  });

  it("a wait that times out is cancelled: it leaves the queue and the next waiter is not held up", async () => {
    const locks = client();
    const [a, b, c] = [await locks.session({ ttlMs: 2_000 }), await locks.session({ ttlMs: 2_000 }), await locks.session({ ttlMs: 2_000 })];
    const held = await a.acquire("timeout/L");
    const error = await b.acquire("timeout/L", { timeoutMs: 300 }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(LockWaitError);
    expect(error).toMatchObject({ code: "LOCK_TIMEOUT" });
    const waiting = c.acquire("timeout/L");
    await expect.poll(async () => (await locks.lock("timeout/L")).waiters.map((waiter) => waiter.session)).toEqual([c.id]);
    await held.release();
    expect((await waiting).token).toBeGreaterThan(held.token);
    for (const session of [a, b, c]) await session.close();
  });

  it("an aborted wait is cancelled and rejects with the signal's reason", async () => {
    const locks = client();
    const a = await locks.session({ ttlMs: 2_000 });
    const b = await locks.session({ ttlMs: 2_000 });
    await a.acquire("abort/L");
    const controller = new AbortController();
    const waiting = b.acquire("abort/L", { signal: controller.signal });
    await expect.poll(async () => (await locks.lock("abort/L")).waiters.length).toBe(1);
    controller.abort(new Error("caller gave up"));
    await expect(waiting).rejects.toThrow("caller gave up");
    await expect.poll(async () => (await locks.lock("abort/L")).waiters.length).toBe(0);
    await a.close();
    await b.close();
  });

  it("a holder whose client stops keeping alive loses the lock to the waiter after its TTL, and its signal aborted first", async () => {
    const locks = client();
    const holder = await locks.session({ ttlMs: 1_000 });
    const waiter = await locks.session({ ttlMs: 5_000 });
    const held = await holder.acquire("expiry/L");
    holder.stop();
    const started = performance.now();
    const next = await waiter.acquire("expiry/L", { timeoutMs: 5_000 });
    const waited = performance.now() - started;
    expect(next.token).toBeGreaterThan(held.token);
    expect(waited).toBeGreaterThan(600);
    // The stopped client's own deadline (open + TTL × 0.99) had passed when the grant came, and its lock's signal aborts (a timer: poll).
    expect(holder.remainingMs).toBeLessThan(0);
    await expect.poll(() => held.signal.aborted, { timeout: 1_000 }).toBe(true);
    expect(holder.status).toBe("jeopardy");
    expect((await locks.checkToken("expiry/L", held.token)).valid).toBe(false);
    await waiter.close();
  });
});

describe("watches and elections", () => {
  it("a watch sees a lock's grants and releases in order, each once", async () => {
    const locks = client();
    const watch = locks.watch({ lock: "watched/L" });
    const seen: string[] = [];
    const reading = (async () => {
      for await (const batch of watch) for (const event of batch.events) if (event.type === "acquired" || event.type === "released" || event.type === "queued") seen.push(`${event.type}:${event.session.slice(0, 4)}`);
    })();
    const a = await locks.session({ ttlMs: 2_000 });
    const b = await locks.session({ ttlMs: 2_000 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const held = await a.acquire("watched/L");
    const waiting = b.acquire("watched/L");
    await expect.poll(async () => (await locks.lock("watched/L")).waiters.length).toBe(1);
    await held.release();
    await (await waiting).release();
    const expected = [`acquired:${a.id.slice(0, 4)}`, `queued:${b.id.slice(0, 4)}`, `released:${a.id.slice(0, 4)}`, `acquired:${b.id.slice(0, 4)}`, `released:${b.id.slice(0, 4)}`];
    await expect.poll(() => seen, { timeout: 3_000 }).toEqual(expected);
    watch.close();
    await reading;
    await a.close();
    await b.close();
  });

  it("an election hands leadership to the next candidate on resign, and observers follow", async () => {
    const locks = client();
    const election = locks.election("election/primary");
    const first = await locks.session({ ttlMs: 2_000 });
    const second = await locks.session({ ttlMs: 2_000 });
    const observed: (string | null)[] = [];
    const controller = new AbortController();
    const observing = (async () => {
      for await (const change of election.observe({ signal: controller.signal })) observed.push(change.leader);
    })();
    const term1 = await election.campaign(first);
    const campaigning = election.campaign(second);
    await expect.poll(async () => (await locks.lock("election/primary")).waiters.length).toBe(1);
    await election.resign(term1);
    const term2 = await campaigning;
    expect(term2.token).toBeGreaterThan(term1.token);
    await expect.poll(() => observed.filter((leader) => leader !== null).at(-1), { timeout: 3_000 }).toBe(second.id);
    expect(observed.filter((leader) => leader !== null)).toEqual([first.id, second.id]);
    controller.abort();
    await observing;
    await first.close();
    await second.close();
  });
});

describe("metrics", () => {
  it("serves Prometheus text on GET /metrics: replica, lock and session figures that move with use", async () => {
    const scrape = async () => {
      const url = leader().config.members.find((member) => member.id === leader().config.id)?.url.replace("ws://", "http://") as string;
      const response = await fetch(`${url}/metrics`);
      expect(response.headers.get("content-type")).toContain("text/plain");
      return response.text();
    };
    const valueOf = (text: string, line: string) => Number(text.split("\n").find((candidate) => candidate.startsWith(`${line} `))?.split(" ").at(-1) ?? Number.NaN);
    const before = await scrape();
    expect(before).toContain("# TYPE synod_lock_acquires_total counter");
    expect(valueOf(before, "synod_is_leader")).toBe(1);
    const locks = client();
    const session = await locks.session({ ttlMs: 2_000 });
    const held = await session.acquire("metrics/L");
    await expect(session.acquire("metrics/L", { wait: false })).rejects.toBeDefined();
    await held.release();
    await locks.checkToken("metrics/L", held.token);
    const after = await scrape();
    expect(valueOf(after, 'synod_lock_acquires_total{result="granted"}')).toBeGreaterThanOrEqual(1);
    expect(valueOf(after, "synod_lock_fencing_rejections_total")).toBeGreaterThanOrEqual(1);
    expect(valueOf(after, "synod_lock_hold_seconds_count")).toBeGreaterThan(valueOf(before, "synod_lock_hold_seconds_count"));
    expect(valueOf(after, "synod_lock_sessions")).toBeGreaterThanOrEqual(1);
    await session.close();
  });
});
