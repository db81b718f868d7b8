import { describe, expect, it } from "vitest";
import type { NodeId } from "../ballot.js";
import type { Message } from "../messages.js";
import type { Transport } from "../transport.js";

/** A set of connected transports, one per node id, and how to tear them down. */
export interface TransportCluster {
  readonly transports: ReadonlyMap<NodeId, Transport>;
  close(): Promise<void>;
}

export interface TransportHarness {
  /** Transports for `ids`, able to reach one another. */
  create(ids: readonly NodeId[]): Promise<TransportCluster>;
}

const ballot = { round: 3, node: "a" };
/** One message of every type, from `from` to `to`. */
export function sampleMessages(from: NodeId, to: NodeId): Message[] {
  const value = { type: "batch" as const, time: 12.5, commands: [{ session: "s", seq: 1, body: { type: "op" as const, op: { k: "v", n: [1, 2] } } }] };
  return [
    { type: "pre-vote", from, to, ballot },
    { type: "pre-vote-reply", from, to, ballot, granted: true },
    { type: "prepare", from, to, ballot, fromSlot: 4 },
    { type: "promise", from, to, ballot, fromSlot: 4, nextSlot: 6, entries: [{ slot: 5, ballot, value, chosen: false }], noMoreAccepted: true, logStart: 0, firstUnchosen: 4 },
    { type: "accept", from, to, ballot, entries: [{ slot: 6, value }, { slot: 7, value: { type: "noop" } }], firstUnchosen: 5 },
    { type: "accepted", from, to, ballot, slots: [6, 7], firstUnchosen: 5 },
    { type: "reject", from, to, ballot, promised: { round: 4, node: "b" }, reason: "promised-higher" },
    { type: "success", from, to, ballot, entries: [{ slot: 5, value }], firstUnchosen: 8 },
    { type: "heartbeat", from, to, ballot, firstUnchosen: 8, round: 17, logTime: 1_700_000_000_000 },
    { type: "heartbeat-reply", from, to, ballot, round: 17, firstUnchosen: 8 },
  ];
}

/**
 * The assertions every `Transport` must pass. Paxos needs only best-effort
 * delivery, so these check what a healthy local network must do: deliver
 * every message type intact to its addressee only, and never throw.
 */
export function runTransportConformance(name: string, harness: TransportHarness): void {
  describe(`Transport conformance: ${name}`, () => {
    it("delivers every message type intact, to its addressee only", async () => {
      const cluster = await harness.create(["a", "b", "c"]);
      try {
        const received = new Map<NodeId, Message[]>([["a", []], ["b", []], ["c", []]]);
        for (const [id, transport] of cluster.transports) transport.onMessage((message) => received.get(id)?.push(message));
        const sent = sampleMessages("a", "b");
        for (const message of sent) cluster.transports.get("a")?.send(message);
        // Vitest polls; the suite keeps no timers of its own (core stays free of them).
        await expect.poll(() => received.get("b")?.length ?? 0, { timeout: 5_000, interval: 5 }).toBeGreaterThanOrEqual(sent.length);
        expect(received.get("b")).toEqual(sent);
        expect(received.get("c")).toEqual([]);
        expect(received.get("a")).toEqual([]);
      } finally {
        await cluster.close();
      }
    });

    it("carries a burst of messages both ways between every pair", async () => {
      const ids = ["a", "b", "c"];
      const cluster = await harness.create(ids);
      try {
        let count = 0;
        for (const transport of cluster.transports.values()) transport.onMessage(() => (count += 1));
        const perLink = 200;
        for (const from of ids) {
          for (const to of ids) {
            if (from === to) continue;
            for (let round = 0; round < perLink; round += 1) {
              cluster.transports.get(from)?.send({ type: "heartbeat", from, to, ballot, firstUnchosen: round, round, logTime: round });
            }
          }
        }
        await expect.poll(() => count, { timeout: 10_000, interval: 5 }).toBe(6 * perLink);
      } finally {
        await cluster.close();
      }
    });

    it("never throws: unknown addressees, and sends after close, are dropped", async () => {
      const cluster = await harness.create(["a", "b"]);
      const a = cluster.transports.get("a") as Transport;
      expect(() => a.send({ type: "heartbeat", from: "a", to: "nobody", ballot, firstUnchosen: 0, round: 1, logTime: 0 })).not.toThrow();
      await cluster.close();
      expect(() => a.send({ type: "heartbeat", from: "a", to: "b", ballot, firstUnchosen: 0, round: 1, logTime: 0 })).not.toThrow();
    });
  });
}
