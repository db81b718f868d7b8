/**
 * The lock service's test-only planted bugs (`--plant-app-bug`), which the
 * chaos campaign must catch: each does what its description says, and a
 * name the service does not know is refused at start.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePorts } from "@synod/testkit/processes";
import { silentLogger } from "@synod/transport-ws";
import { afterAll, expect, it } from "vitest";
import { LOCK_PLANTED_BUGS, LockClient, startLockServer } from "../src/index.js";

const directory = mkdtempSync(join(tmpdir(), "synod-lock-bugs-"));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

/** A one-replica lock service, with `appBugs` planted; what a keepalive 100 ms after a session opened says is left of its TTL. */
async function remainingAfterOpen(name: string, appBugs: readonly string[]): Promise<{ ttlMs: number; remainingMs: number }> {
  const [port] = await freePorts(1);
  const members = [{ id: "n1", url: `ws://127.0.0.1:${port}` }];
  const server = await startLockServer({ id: "n1", members, dataDir: join(directory, name), tickMs: 20, appBugs }, { logger: silentLogger });
  const client = new LockClient({ urls: [members[0]?.url as string], requestTimeoutMs: 1_000, operationTimeoutMs: 10_000 });
  try {
    const session = await client.session({ ttlMs: 3_000 });
    session.stop();
    await new Promise((resolve) => setTimeout(resolve, 100));
    return await client.keepalive(session.id, session.secret);
  } finally {
    await client.close();
    await server.stop();
  }
}

it("keepalive-full-ttl answers a keepalive with the whole TTL; without it, the time left on the logged deadline", async () => {
  expect(LOCK_PLANTED_BUGS).toContain("keepalive-full-ttl");
  const correct = await remainingAfterOpen("correct", []);
  expect(correct.remainingMs).toBeLessThan(correct.ttlMs);
  const planted = await remainingAfterOpen("planted", ["keepalive-full-ttl"]);
  expect(planted.remainingMs).toBe(planted.ttlMs);
});

it("a bug the service does not know is refused at start, by name", async () => {
  const [port] = await freePorts(1);
  const members = [{ id: "n1", url: `ws://127.0.0.1:${port}` }];
  await expect(startLockServer({ id: "n1", members, dataDir: join(directory, "unknown"), appBugs: ["no-such-bug"] }, { logger: silentLogger })).rejects.toThrow(/no bug "no-such-bug"/);
});
