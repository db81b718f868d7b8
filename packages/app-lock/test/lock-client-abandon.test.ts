/**
 * An acquire that got no answer is withdrawn in the background (cancel, and
 * release if it was granted after all). The next acquire of the same lock
 * must wait for that withdrawal: otherwise the withdrawal's release could
 * land after the new grant and release it, while the caller holds a lock
 * the cluster has given away. The cluster is stubbed: this is about the
 * order of the client's commands.
 */
import { ClientError } from "@synod/transport-ws";
import { expect, it } from "vitest";
import { LockClient } from "../src/index.js";

it("the next acquire of a lock waits until the withdrawal of an unanswered one is done", async () => {
  const client = new LockClient({ urls: ["ws://127.0.0.1:1"], requestTimeoutMs: 100 });
  const sent: string[] = [];
  let acquires = 0;
  const stub = client as unknown as {
    command(op: Record<string, unknown>): Promise<unknown>;
    awaitGrant(): Promise<unknown>;
    keepalive(): Promise<unknown>;
  };
  stub.command = async (op) => {
    sent.push(String(op.type));
    if (op.type === "open-session") return { type: "session-opened" };
    if (op.type === "acquire") {
      acquires += 1;
      // The first acquire is granted on the cluster, but its answer is lost.
      if (acquires === 1) throw new ClientError("UNAVAILABLE", "no answer");
      return { type: "granted", lock: op.lock, token: 2 };
    }
    if (op.type === "cancel") await new Promise((resolve) => setTimeout(resolve, 50));
    return { type: "ok" };
  };
  // The withdrawal finds the first attempt granted (token 1), so it releases it.
  stub.awaitGrant = async () => ({ type: "granted", token: 1 });
  stub.keepalive = async () => ({ ttlMs: 10_000, remainingMs: 10_000 });
  try {
    const session = await client.session();
    await expect(session.acquire("L")).rejects.toBeInstanceOf(ClientError);
    const held = await session.acquire("L");
    expect(held.token).toBe(2);
    expect(held.held).toBe(true);
    // The release of the first grant went out before the second acquire, never after it.
    expect(sent).toEqual(["open-session", "acquire", "cancel", "release", "acquire"]);
    session.stop();
  } finally {
    await client.close();
  }
});
